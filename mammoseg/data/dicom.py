"""DICOM reader: mammograms as float32 in [0, 1] with dense tissue bright, plus their header facts.

`read_dicom` turns the stored pixel values into an image in [0, 1]:

1. decode (uncompressed, RLE, deflate natively; JPEG, JPEG-LS, JPEG 2000 and HTJ2K through
   pydicom's decoder plugins, pylibjpeg with its libjpeg and openjpeg plugins);
2. keep the ``BitsStored`` low bits (anything above them is not pixel data);
3. either map the whole stored range ``[0, 2**BitsStored - 1]`` (signed: its two's-complement
   range) linearly onto [0, 1], or, when asked, apply the modality rescale (slope, intercept)
   and then the VOI LUT or window the file recommends for display (PS3.3 C.11.2);
4. invert MONOCHROME1 (where the smallest value is displayed white) so that dense tissue is
   bright in every image.

Files that cannot give a usable image (not a DICOM, no pixel data, pixel data cut short, a
scanner test file scaled down to a few pixels, a compression without a decoder) raise
`MammosegDataError` naming the file and, for compressions, the plugin to install.

`write_dicom` writes the small secondary-capture files of the phantoms and tests (at the end of
this module).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pydicom.uid as uids
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_windowing

from mammoseg.data.errors import MammosegDataError

VOI_CHOICES = (None, "window", "lut", "auto")
_PIXEL_DATA = 0x7FE00010
_J2K = "pylibjpeg pylibjpeg-openjpeg"
_JPEG = "pylibjpeg pylibjpeg-libjpeg"
# What to `pip install` when pydicom finds no decoder for a transfer syntax.
DECODER_PLUGINS = {
    uids.JPEG2000Lossless: _J2K,
    uids.JPEG2000: _J2K,
    uids.HTJ2KLossless: _J2K,
    uids.HTJ2KLosslessRPCL: _J2K,
    uids.HTJ2K: _J2K,
    uids.JPEGBaseline8Bit: _JPEG,
    uids.JPEGExtended12Bit: _JPEG,
    uids.JPEGLossless: _JPEG,
    uids.JPEGLosslessSV1: _JPEG,
    uids.JPEGLSLossless: _JPEG,
    uids.JPEGLSNearLossless: _JPEG,
    uids.RLELossless: "pylibjpeg pylibjpeg-rle",
}


def _open(path: Path, **kwargs) -> pydicom.Dataset:
    if not path.is_file():
        raise MammosegDataError("DICOM file not found", path=path)
    try:
        return pydicom.dcmread(path, **kwargs)
    except InvalidDicomError as err:
        raise MammosegDataError(
            "not a DICOM file (no 'DICM' marker after the 128-byte preamble)", path=path
        ) from err
    except (OSError, ValueError, EOFError, KeyError, TypeError) as err:
        raise MammosegDataError(f"cannot parse the DICOM header: {err}", path=path) from err


def _first_number(value: Any) -> float | None:
    """First entry of a possibly multi-valued DS element, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return float(value[0]) if len(value) else None
    return float(value)


def _header(ds: pydicom.Dataset) -> dict[str, Any]:
    laterality = ds.get("ImageLaterality") or ds.get("Laterality") or None
    view = ds.get("ViewPosition") or None
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    pixel_spacing = None
    if spacing is not None and len(spacing) == 2 and all(float(v) > 0 for v in spacing):
        pixel_spacing = (float(spacing[0]), float(spacing[1]))
    rows, cols = ds.get("Rows"), ds.get("Columns")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    return {
        "laterality": str(laterality) if laterality else None,
        "view": str(view) if view else None,
        "photometric": str(ds.get("PhotometricInterpretation", "")) or None,
        "pixel_spacing": pixel_spacing,
        "shape": (int(rows), int(cols)) if rows is not None and cols is not None else None,
        "bits_stored": int(ds.get("BitsStored") or ds.get("BitsAllocated") or 0) or None,
        "transfer_syntax": syntax.name if syntax is not None else None,
        "presentation_intent": ds.get("PresentationIntentType") or None,
        "modality": ds.get("Modality") or None,
    }


def _checked_header(ds: pydicom.Dataset, path: Path) -> dict[str, Any]:
    """`_header` with its numbers checked: one that does not parse, or an impossible bit depth."""
    try:
        meta = _header(ds)
        allocated = int(ds.get("BitsAllocated") or 0)
        stored = ds.get("BitsStored")
        stored = None if stored is None or stored == "" else int(stored)
    except (TypeError, ValueError, OverflowError) as err:
        raise MammosegDataError(f"cannot parse the DICOM header numbers: {err}", path=path) from err
    if stored is not None and (stored <= 0 or (allocated and stored > allocated)):
        raise MammosegDataError(
            f"BitsStored {stored} must be in 1..BitsAllocated ({allocated})", path=path
        )
    return meta


def read_dicom_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header facts of a DICOM file, without reading its pixel data.

    Args:
        path: the DICOM file.

    Returns:
        A dict with ``laterality`` ("L"/"R"/None), ``view`` ("CC", "MLO", ... or None),
        ``photometric`` ("MONOCHROME1"/"MONOCHROME2"), ``pixel_spacing`` ((row, col) in mm or
        None), ``shape`` ((rows, columns)), ``bits_stored``, ``transfer_syntax`` (its name),
        ``presentation_intent`` and ``modality``.

    Raises:
        MammosegDataError: missing file, not a DICOM, unreadable header.

    Example:
        >>> read_dicom_header("../shared/data/dicom/nema/MG1_J2KI")["shape"]  # doctest: +SKIP
        (4664, 3064)
    """
    path = Path(path)
    return _checked_header(_open(path, stop_before_pixels=True), path)


def _decode(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    syntax = ds.file_meta.get("TransferSyntaxUID", uids.ExplicitVRLittleEndian)
    if syntax.is_compressed:
        try:
            decoder = pydicom.pixels.get_decoder(syntax)
        except NotImplementedError as err:
            raise MammosegDataError(
                f"pydicom has no decoder for the transfer syntax {syntax.name!r} ({syntax}); "
                "convert the file to an uncompressed or JPEG 2000 syntax first "
                "(e.g. `gdcmconv --raw` or dcmtk's `dcmconv`)",
                path=path,
            ) from err
        if not decoder.is_available:
            plugin = DECODER_PLUGINS.get(syntax, "pylibjpeg and its plugins")
            raise MammosegDataError(
                f"no pixel data decoder is installed for {syntax.name!r} ({syntax}): "
                f"pip install {plugin}",
                path=path,
            )
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    allocated = int(ds.get("BitsAllocated", 0))
    data = ds.get("PixelData")
    if (
        syntax in (uids.ImplicitVRLittleEndian, uids.ExplicitVRLittleEndian)
        and allocated in (8, 16)
        and int(ds.get("PixelRepresentation", 0)) == 0
        and isinstance(data, bytes)
        and len(data) >= rows * cols * allocated // 8
    ):
        # Uncompressed unsigned data: a read-only view of the bytes already read, where
        # pydicom would make a copy (24 MB for a CBIS-DDSM mammogram).
        dtype = np.dtype("<u1" if allocated == 8 else "<u2")
        return np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    try:
        return ds.pixel_array
    except (ValueError, RuntimeError, NotImplementedError, TypeError, AttributeError) as err:
        raise MammosegDataError(f"cannot decode the pixel data: {err}", path=path) from err


def _window(values: np.ndarray, ds: pydicom.Dataset, path: Path) -> tuple[np.ndarray, str]:
    """Apply the first Window Center/Width (PS3.3 C.11.2.1.2), output in [0, 1]."""
    center = _first_number(ds.get("WindowCenter"))
    width = _first_number(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        raise MammosegDataError("no usable Window Center / Window Width in the header", path=path)
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper() or "LINEAR"
    if function not in ("SIGMOID", "LINEAR_EXACT") and width < 1:
        raise MammosegDataError(f"LINEAR window width must be >= 1, found {width}", path=path)
    # pydicom scales its output to the range of Bits Stored; a window-only dataset with one
    # unsigned stored bit makes that range [0, 1] whatever the file's bit depth and rescale.
    window = pydicom.Dataset()
    window.BitsStored, window.PixelRepresentation = 1, 0
    window.PhotometricInterpretation = "MONOCHROME2"
    window.WindowCenter, window.WindowWidth = center, width
    window.VOILUTFunction = function if function in ("SIGMOID", "LINEAR_EXACT") else "LINEAR"
    values = np.asarray(values)
    out = apply_windowing(values.astype(np.float64), window)
    out = out.astype(np.result_type(values.dtype, np.float32))
    return np.clip(out, 0.0, 1.0), f"window {function} center={center:g} width={width:g}"


def _voi_lut(values: np.ndarray, ds: pydicom.Dataset, path: Path) -> tuple[np.ndarray, str]:
    """Apply the first item of the VOI LUT Sequence, output in [0, 1]."""
    # Kept by hand, not pydicom.pixels.apply_voi_lut: pydicom 3.0.2 maps input 256 of an
    # 8-bit table to 0 instead of clamping it to the last entry.
    item = ds.VOILUTSequence[0]
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536  # PS3.3 C.11.1.1: 0 means 2**16 entries
    data = item.get("LUTData")
    if data is None:
        raise MammosegDataError("VOI LUT Sequence item without LUT Data", path=path)
    table = np.asarray(data, dtype=np.float32)[:entries]
    index = np.clip(np.rint(values) - first, 0, len(table) - 1).astype(np.intp)
    return table[index] / np.float32(2**bits - 1), f"VOI LUT {item.get('LUTExplanation', '')}"


def read_dicom_stored(
    path: str | os.PathLike, min_size: int = 16
) -> tuple[np.ndarray, dict[str, Any], pydicom.Dataset]:
    """Decode the stored pixel values of a 2-D greyscale DICOM, validated, high bits cleared.

    The cheap first half of `read_dicom`, for callers that resize before normalising (the
    normalisation is affine, so it commutes with averaging): ``meta["value_range"]`` is the
    (low, high) stored range that maps onto [0, 1] and ``meta["inverted"]`` says whether
    1 - x must follow (MONOCHROME1, or a negative rescale slope).

    Args:
        path: the DICOM file.
        min_size: smallest acceptable rows and columns.

    Returns:
        ``(stored, meta, dataset)``: the integer array (rows, columns), the header facts of
        `read_dicom_header` plus ``value_range`` and ``inverted``, and the pydicom dataset.

    Raises:
        MammosegDataError: as `read_dicom`.

    Example:
        >>> stored, meta, _ = read_dicom_stored("mask.dcm")  # doctest: +SKIP
        >>> inside = stored > meta["value_range"][0]
    """
    path = Path(path)
    ds = _open(path)
    meta = _checked_header(ds, path)
    if _PIXEL_DATA not in ds:
        raise MammosegDataError("the DICOM file has no pixel data (header only)", path=path)
    if meta["shape"] is None:
        raise MammosegDataError("the DICOM header has no Rows / Columns", path=path)
    rows, cols = meta["shape"]
    if min(rows, cols) < min_size:
        raise MammosegDataError(
            f"the image is only {rows}x{cols} pixels (min_size={min_size}): no usable pixels; "
            "the pixel data of this file was cut or scaled down",
            path=path,
        )
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise MammosegDataError(
            f"expected a greyscale image, found {ds.SamplesPerPixel} samples per pixel", path=path
        )
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames != 1:
        raise MammosegDataError(f"expected one frame, found {frames} (multi-frame)", path=path)
    photometric = meta["photometric"]
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise MammosegDataError(
            f"unsupported photometric interpretation {photometric!r}", path=path
        )
    stored = _decode(ds, path)
    if stored.shape != (rows, cols):
        raise MammosegDataError(f"decoded shape {stored.shape} != header {rows}x{cols}", path=path)
    bits = meta["bits_stored"] or stored.dtype.itemsize * 8
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    if not signed and bits < stored.dtype.itemsize * 8:
        keep = np.asarray((1 << bits) - 1, dtype=stored.dtype)
        if stored.flags.writeable:
            np.bitwise_and(stored, keep, out=stored)
        else:
            stored = stored & keep
    low = -(2.0 ** (bits - 1)) if signed else 0.0
    slope = _first_number(ds.get("RescaleSlope")) or 1.0
    meta["value_range"] = (low, low + 2.0**bits - 1.0)
    # A negative slope reverses the meaning of the stored values; MONOCHROME1 shows the
    # smallest value white. Either way 1 - x puts dense tissue bright; both cancel out.
    meta["inverted"] = (slope < 0) != (photometric == "MONOCHROME1")
    return stored, meta, ds


def read_dicom(
    path: str | os.PathLike, voi: str | None = None, min_size: int = 16
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a 2-D greyscale DICOM image as float32 in [0, 1], dense tissue bright.

    Args:
        path: the DICOM file (any name; CBIS-DDSM uses ``000000.dcm``, NEMA no suffix).
        voi: None maps the whole stored range ``BitsStored`` onto [0, 1] (what a model should
            see: nothing clipped); "window" applies the first Window Center/Width after the
            modality rescale (linear, linear-exact or sigmoid as the header says); "lut" the
            first VOI LUT Sequence item; "auto" the LUT if there is one, else the window.
        min_size: smallest acceptable rows and columns. Scanner test files whose pixel data
            was scaled down to a few pixels carry no usable image.

    Returns:
        ``(image, meta)``: the image, float32 (rows, columns) in [0, 1], and the header facts
        of `read_dicom_header` plus ``voi`` (what was applied, or None).

    Raises:
        ValueError: unknown ``voi``.
        MammosegDataError: missing file, not a DICOM, no pixel data, pixel data cut short or
            corrupt, an image smaller than ``min_size``, several frames or colour samples, a
            compression without an installed decoder (the message names the plugin), a window
            or LUT asked for but absent.

    Example:
        >>> image, meta = read_dicom("../shared/data/dicom/nema/MG1_J2KI")  # doctest: +SKIP
        >>> image.shape, meta["laterality"], meta["view"]
        ((4664, 3064), 'L', 'MLO')
    """
    if voi not in VOI_CHOICES:
        raise ValueError(f"`voi` must be one of {VOI_CHOICES}, received {voi!r}")
    path = Path(path)
    stored, meta, ds = read_dicom_stored(path, min_size)
    if voi == "auto":
        voi = "lut" if "VOILUTSequence" in ds else "window"
    if voi is None:
        image = normalise(stored, meta)
        meta["voi"] = None
        return image, meta
    slope = _first_number(ds.get("RescaleSlope")) or 1.0
    intercept = _first_number(ds.get("RescaleIntercept")) or 0.0
    values = stored.astype(np.float64) * slope + intercept
    if voi == "lut":
        if "VOILUTSequence" not in ds or not len(ds.VOILUTSequence):
            raise MammosegDataError("voi='lut' asked for, but no VOI LUT Sequence", path=path)
        image, meta["voi"] = _voi_lut(values, ds, path)
    else:
        image, meta["voi"] = _window(values, ds, path)
    image = image.astype(np.float32)
    if meta["photometric"] == "MONOCHROME1":
        np.subtract(np.float32(1.0), image, out=image)
    return np.clip(image, 0.0, 1.0, out=image), meta


def normalise(values: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Map stored values (or an average of them) onto [0, 1] as `read_dicom_stored` says.

    Example:
        >>> normalise(np.array([0, 4095]), {"value_range": (0, 4095), "inverted": True})
        array([1., 0.], dtype=float32)
    """
    low, high = meta["value_range"]
    image = np.asarray(values).astype(np.float32)
    image -= np.float32(low)
    image *= np.float32(1.0 / (high - low))
    if meta["inverted"]:
        np.subtract(np.float32(1.0), image, out=image)
    return np.clip(image, 0.0, 1.0, out=image)


def sample_rows(path: str | os.PathLike, n_rows: int = 32) -> np.ndarray:
    """Stored values of ``n_rows`` evenly spaced rows, reading only those rows when possible.

    Cheap enough to look at thousands of full-size files: for uncompressed little-endian data
    only the sampled rows are read from disk; compressed files are decoded whole.

    Args:
        path: the DICOM file.
        n_rows: how many rows to sample (all rows if the image has fewer).

    Returns:
        An integer array (n, columns) of stored values.

    Raises:
        MammosegDataError: as `read_dicom`.

    Example:
        >>> len(np.unique(sample_rows("mask.dcm")))  # doctest: +SKIP
        2
    """
    path = Path(path)
    ds = _open(path, defer_size=4096)
    syntax = ds.file_meta.get("TransferSyntaxUID", uids.ExplicitVRLittleEndian)
    meta = _checked_header(ds, path)
    if _PIXEL_DATA not in ds or meta["shape"] is None:
        raise MammosegDataError("the DICOM file has no pixel data (header only)", path=path)
    rows, cols = meta["shape"]
    picks = np.unique(np.linspace(0, rows - 1, min(n_rows, rows)).round().astype(int))
    element = ds.get_item(_PIXEL_DATA)
    allocated = int(ds.get("BitsAllocated", 0))
    native = syntax in (uids.ImplicitVRLittleEndian, uids.ExplicitVRLittleEndian)
    if native and allocated in (8, 16):
        dtype = np.dtype("<u1" if allocated == 8 else "<u2")
        row_bytes = cols * dtype.itemsize
        deferred = getattr(element, "value", None) is None and hasattr(element, "value_tell")
        if deferred:  # large: read the sampled rows straight from the file
            available = min(element.length, path.stat().st_size - element.value_tell)
        else:  # small, or a cut file pydicom read to its end
            data = element.value
            available = len(data)
        if available < rows * row_bytes:
            raise MammosegDataError(
                f"the pixel data is cut: {available} bytes, expected {rows * row_bytes}",
                path=path,
            )
        if not deferred:
            return np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)[picks]
        out = np.empty((len(picks), cols), dtype=dtype)
        with open(path, "rb") as handle:
            for i, row in enumerate(picks):
                handle.seek(element.value_tell + int(row) * row_bytes)
                out[i] = np.frombuffer(handle.read(row_bytes), dtype=dtype)
        return out
    return _decode(pydicom.dcmread(path), path)[picks]


def write_dicom(
    path: str | os.PathLike,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    transfer_syntax: str = uids.ExplicitVRLittleEndian,
    **attributes: Any,
) -> Path:
    """Write a 2-D greyscale image as a minimal secondary-capture DICOM (phantoms and tests).

    Args:
        path: the file to write (its folder is created).
        pixels: uint8 or uint16 (rows, columns) stored values.
        photometric: "MONOCHROME2" or "MONOCHROME1".
        bits_stored: significant bits (default: all bits of the dtype).
        transfer_syntax: a transfer syntax UID; compressed ones (RLE, JPEG 2000) need an
            encoder (pydicom's own for RLE, pylibjpeg-openjpeg for JPEG 2000).
        **attributes: further DICOM keywords, e.g. ``PatientID="P_00001"``.

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: ``pixels`` not a 2-D uint8/uint16 array.

    Example:
        >>> write_dicom("x.dcm", np.zeros((64, 64), np.uint16), bits_stored=12)  # doctest: +SKIP
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"`pixels` must be a 2-D uint8 or uint16 array, received {pixels.dtype} {pixels.shape}"
        )
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = uids.SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = attributes.pop("SOPInstanceUID", None) or uids.generate_uid()
    meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    bits = bits_stored or pixels.dtype.itemsize * 8
    ds.set_pixel_data(pixels, photometric, bits, generate_instance_uid=False)
    if uids.UID(transfer_syntax).is_compressed:
        ds.compress(transfer_syntax, generate_instance_uid=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
