"""DICOM reader: real NEMA and scanner files from ../shared/data/dicom, and tiny synthetic ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pydicom.uid as uids
import pytest

from mammoseg.data import MammosegDataError
from mammoseg.data.dicom import (
    _voi_lut,
    _window,
    normalise,
    read_dicom,
    read_dicom_header,
    read_dicom_stored,
    sample_rows,
    write_dicom,
)
from mammoseg.data.records import read_pixels

DICOM_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dicom"
HEADERS = [
    "MG-Im-GE-SenDS-scaled.dcm",
    "MG-Im-GE_Seno_1_ForPresentation.dcm",
    "MG-Im-GE_Seno_1_ForProcessing.dcm",
    "MG-Im-GE_Seno_2_ForPresentation.dcm",
    "MG-Im-Hologic-PropProj.dcm",
]


def real(relative: str) -> Path:
    path = DICOM_DIR / relative
    if not path.is_file():
        pytest.skip(f"real DICOM {relative} not found under {DICOM_DIR.resolve()}")
    return path


@pytest.fixture(scope="module")
def mammogram():
    return read_dicom(real("nema/MG1_J2KI"))


# --------------------------------------------------------------------------- real files


def test_nema_mammogram_jpeg2000(mammogram):
    image, meta = mammogram
    assert image.shape == (4664, 3064) and image.dtype == np.float32
    assert meta["shape"] == (4664, 3064)
    assert (meta["laterality"], meta["view"], meta["photometric"]) == ("L", "MLO", "MONOCHROME2")
    assert meta["bits_stored"] == 12 and meta["transfer_syntax"] == "JPEG 2000 Image Compression"
    # Stored values read once with pydicom: 12 bits, so image = stored / 4095.
    for (row, col), stored in {(2332, 1000): 2500, (1000, 500): 2787, (4000, 2500): 509}.items():
        assert image[row, col] == pytest.approx(stored / 4095, abs=1e-6)
    assert image.mean() == pytest.approx(1610.8409 / 4095, abs=1e-5)


def test_monochrome1_radiographs_are_inverted():
    image, meta = read_dicom(real("nema/RG3_UNC"))  # 10 bits, uncompressed
    assert meta["photometric"] == "MONOCHROME1" and meta["bits_stored"] == 10
    assert image[880, 880] == pytest.approx(1 - 306 / 1023, abs=1e-6)
    assert image[100, 1700] == 1.0  # stored 0 is displayed white in MONOCHROME1
    image, meta = read_dicom(real("nema/RG1_J2KI"))  # 15 bits, JPEG 2000
    assert meta["bits_stored"] == 15 and meta["pixel_spacing"] is None  # header says 0.000
    assert image[977, 920] == pytest.approx(1 - 3342 / 32767, abs=1e-6)
    assert image[100, 100] == pytest.approx(1 - 22105 / 32767, abs=1e-6)


@pytest.mark.parametrize("name", HEADERS)
def test_scanner_headers_without_usable_pixels(name):
    path = real(f"mg-headers/{name}")
    with pytest.raises(MammosegDataError, match="no usable pixels|no pixel data") as info:
        read_dicom(path)
    assert name in str(info.value)
    meta = read_dicom_header(path)
    assert meta["photometric"] in ("MONOCHROME1", "MONOCHROME2")
    assert meta["laterality"] in ("L", "R")
    assert 11 <= meta["bits_stored"] <= 14


def test_scanner_header_facts():
    meta = read_dicom_header(real("mg-headers/MG-Im-Hologic-PropProj.dcm"))
    assert (meta["shape"], meta["laterality"], meta["photometric"]) == (
        (425, 266),
        "R",
        "MONOCHROME1",
    )
    meta = read_dicom_header(real("mg-headers/MG-Im-GE-SenDS-scaled.dcm"))
    assert (meta["view"], meta["presentation_intent"]) == ("CC", "FOR PROCESSING")
    assert meta["pixel_spacing"] == pytest.approx((53.961136, 45.0225))


def test_voi_window_and_lut_of_a_real_ge_file():
    path = real("mg-headers/MG-Im-GE_Seno_1_ForPresentation.dcm")  # stored [2316, 2322]
    raw, _ = read_dicom(path, min_size=1)
    assert raw[0] == pytest.approx(np.array([2316, 2322]) / 4095, abs=1e-6)
    window, meta = read_dicom(path, voi="window", min_size=1)
    assert "SIGMOID" in meta["voi"]  # VOI LUT Function of the file; center 2262, width 380
    expected = 1 / (1 + np.exp(-4 * (np.array([2316, 2322]) - 2262) / 380))
    np.testing.assert_allclose(window[0], expected, atol=1e-6)
    lut, meta = read_dicom(path, voi="lut", min_size=1)
    assert meta["voi"] == "VOI LUT NORMAL"
    ds = pydicom.dcmread(path)
    table = np.asarray(ds.VOILUTSequence[0].LUTData)  # descriptor [1715, 1405, 12]
    np.testing.assert_allclose(lut[0], table[[2316 - 1405, 2322 - 1405]] / 4095, atol=1e-6)
    np.testing.assert_allclose(lut, window, atol=2e-3)  # GE's LUT tabulates its sigmoid
    auto, _ = read_dicom(path, voi="auto", min_size=1)
    np.testing.assert_array_equal(auto, lut)


def test_missing_plugin_names_the_package(monkeypatch):
    path = real("nema/MG1_J2KI")
    decoder_class = type(pydicom.pixels.get_decoder(uids.JPEG2000))
    monkeypatch.setattr(decoder_class, "is_available", property(lambda self: False))
    with pytest.raises(MammosegDataError, match="pip install pylibjpeg pylibjpeg-openjpeg") as info:
        read_dicom(path)
    assert "MG1_J2KI" in str(info.value)


# --------------------------------------------------------------------------- synthetic files


def test_bits_stored_masks_high_bits_and_voi_none(tmp_path):
    pixels = np.array([[0, 4095, 2048, 4095 | 0xF000]] * 20, dtype=np.uint16)
    path = write_dicom(tmp_path / "a.dcm", np.tile(pixels, (1, 5)))
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit = 12, 11  # the top 4 bits hold something else (old overlays)
    ds.save_as(path)
    image, meta = read_dicom(path)
    assert meta["bits_stored"] == 12
    np.testing.assert_allclose(image[0, :4], [0, 1, 2048 / 4095, 1], atol=1e-7)


def test_negative_rescale_slope_and_monochrome1(tmp_path):
    pixels = np.full((32, 32), 1000, np.uint16)
    path = write_dicom(tmp_path / "s.dcm", pixels, RescaleSlope=-1, RescaleIntercept=0)
    assert read_dicom(path)[0][0, 0] == pytest.approx(1 - 1000 / 65535)
    path = write_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1")
    assert read_dicom(path)[0][0, 0] == pytest.approx(1 - 1000 / 65535)


@pytest.mark.parametrize("syntax", [uids.RLELossless, uids.JPEG2000Lossless])
def test_compressed_round_trip(tmp_path, syntax):
    pixels = np.random.default_rng(0).integers(0, 4096, (40, 48)).astype(np.uint16)
    path = write_dicom(tmp_path / "c.dcm", pixels, bits_stored=12, transfer_syntax=syntax)
    image, meta = read_dicom(path)
    assert meta["transfer_syntax"] == syntax.name
    np.testing.assert_array_equal(np.rint(image * 4095).astype(np.uint16), pixels)
    np.testing.assert_array_equal(sample_rows(path, 3), pixels[[0, 20, 39]])


def test_read_pixels_dispatches_suffixless_dicom(tmp_path):
    path = write_dicom(tmp_path / "noext", np.full((20, 20), 255, np.uint8))
    assert read_pixels(path).max() == 1.0


def test_sample_rows_reads_only_those_rows(tmp_path):
    pixels = np.arange(50 * 30, dtype=np.uint16).reshape(50, 30)
    path = write_dicom(tmp_path / "r.dcm", pixels)
    np.testing.assert_array_equal(sample_rows(path, 3), pixels[[0, 24, 49]])


def test_not_a_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("patient_id,breast density\n")
    with pytest.raises(MammosegDataError, match="notes.dcm: not a DICOM file"):
        read_dicom(path)
    with pytest.raises(MammosegDataError, match="missing.dcm: DICOM file not found"):
        read_dicom(tmp_path / "missing.dcm")


def test_dicom_without_pixels(tmp_path):
    path = write_dicom(tmp_path / "full.dcm", np.zeros((32, 32), np.uint16))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(tmp_path / "empty.dcm")
    with pytest.raises(MammosegDataError, match="empty.dcm: the DICOM file has no pixel data"):
        read_dicom(tmp_path / "empty.dcm")


def test_cut_pixel_data(tmp_path):
    path = write_dicom(tmp_path / "cut.dcm", np.ones((64, 64), np.uint16))
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(MammosegDataError, match="cut.dcm: cannot decode the pixel data"):
        read_dicom(path)
    with pytest.raises(MammosegDataError, match="cut.dcm: the pixel data is cut"):
        sample_rows(path)


def test_unsupported_compression(tmp_path):
    path = write_dicom(tmp_path / "video.dcm", np.zeros((32, 32), np.uint8))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = uids.MPEG2MPML
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    with pytest.raises(MammosegDataError, match="no decoder for the transfer syntax 'MPEG2") as err:
        read_dicom(path)
    assert "video.dcm" in str(err.value) and "gdcmconv" in str(err.value)


def test_invalid_arguments(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", np.zeros((32, 32), np.uint16))
    with pytest.raises(ValueError, match="`voi` must be one of"):
        read_dicom(path, voi="soft")
    with pytest.raises(ValueError, match="`pixels` must be a 2-D uint8 or uint16 array"):
        write_dicom(tmp_path / "b.dcm", np.zeros((4, 4), np.float32))
    with pytest.raises(MammosegDataError, match="no usable Window"):
        read_dicom(path, voi="window")


def test_stored_values_and_normalise_agree_with_read_dicom():
    path = real("nema/RG3_UNC")
    stored, meta, _ = read_dicom_stored(path)
    assert meta["value_range"] == (0.0, 1023.0) and meta["inverted"]  # MONOCHROME1
    assert stored[880, 880] == 306
    np.testing.assert_array_equal(normalise(stored, meta), read_dicom(path)[0])


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("center,width", [(2048, 4096), (1000, 300), (500.5, 2), (100, 1)])
def test_window_equals_the_hand_written_formulas(function, center, width):
    # The hand-written PS3.3 C.11.2.1.2 formulas _window had before it called
    # pydicom.pixels.apply_windowing (max |diff| 1.1e-16 on 0..4095).
    values = np.arange(4096, dtype=np.float64)
    if function == "SIGMOID":
        expected = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    elif function == "LINEAR_EXACT":
        expected = (values - center) / width + 0.5
    else:
        expected = (values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5
    ds = pydicom.Dataset()
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = center, width, function
    with np.errstate(over="ignore"):
        out, _ = _window(values, ds, Path("x.dcm"))
    np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-12)


def test_voi_lut_clamps_where_pydicom_maps_past_the_table_to_zero():
    # Why the VOI LUT is ours: pydicom 3.0.2's apply_voi_lut sends input 256 of an 8-bit,
    # 256-entry identity table to 0; PS3.3 C.11.2.1.1 clamps it to the last entry (255).
    from pydicom.pixels import apply_voi_lut

    ds = pydicom.Dataset()
    ds.BitsStored, ds.BitsAllocated, ds.PixelRepresentation = 8, 8, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    item = pydicom.Dataset()
    item.LUTDescriptor, item.LUTData = [256, 0, 8], list(range(256))
    ds.VOILUTSequence = [item]
    values = np.array([0, 100, 255, 256])
    assert apply_voi_lut(values.copy(), ds).tolist() == [0, 100, 255, 0]
    out, _ = _voi_lut(values.astype(np.float64), ds, Path("x.dcm"))
    np.testing.assert_allclose(out * 255, [0, 100, 255, 255])


def _edited(tmp_path, name, **elements):
    """A small valid DICOM with some header elements replaced (raw values, as a scanner wrote)."""
    path = write_dicom(tmp_path / "ok.dcm", np.zeros((32, 32), np.uint16), bits_stored=12)
    ds = pydicom.dcmread(path)
    for keyword, (vr, value) in elements.items():
        ds.add_new(keyword, vr, value)
    ds.save_as(tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    "elements, message",
    [
        ({"BitsStored": ("US", 0)}, "BitsStored 0 must be in 1..BitsAllocated (16)"),
        ({"BitsStored": ("US", 17)}, "BitsStored 17 must be in 1..BitsAllocated (16)"),
        # "0.1\\0.2 " is overwritten in the file with "0.1\\abc " below.
        ({"PixelSpacing": ("DS", ["0.1", "0.2"])}, "cannot parse the DICOM header numbers"),
    ],
)
def test_bad_header_numbers(tmp_path, elements, message):
    path = _edited(tmp_path, "bad.dcm", **elements)
    path.write_bytes(path.read_bytes().replace(b"0.1\\0.2 ", b"0.1\\abc "))
    for reader in (read_dicom, read_dicom_header):
        with pytest.raises(MammosegDataError) as info:
            reader(path)
        assert "bad.dcm" in str(info.value) and message in str(info.value), str(info.value)
