"""CBIS-DDSM: the real case-description CSVs, and phantom downloads in both layouts."""

from __future__ import annotations

import collections
import csv
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from mammoseg.data import MammosegDataError, load_mask, load_records
from mammoseg.data.cbis_ddsm import mask_geometry, read_case_descriptions
from mammoseg.data.dicom import read_dicom, write_dicom
from mammoseg.data.errors import MammosegDataWarning
from mammoseg.data.phantom_cbis import HEADERS, write_cbis_phantom

CSV_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cbis-ddsm-csv"


@pytest.fixture(scope="module")
def real_records():
    csvs = sorted(CSV_DIR.glob("*_case_description_*.csv"))
    if len(csvs) != 4:
        pytest.skip(f"the four CBIS-DDSM CSVs are not in {CSV_DIR.resolve()}")
    return read_case_descriptions(csvs)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory):
    return write_cbis_phantom(tmp_path_factory.mktemp("cbis"), 16, seed=3, size=160, progress=False)


# --------------------------------------------------------------------------- real CSVs


def test_real_csv_counts(real_records):
    lesions = [les for rec in real_records for les in rec.lesions]
    assert (len(real_records), len(lesions)) == (3103, 3568)
    assert len({rec.patient_id for rec in real_records}) == 1566
    assert collections.Counter(les.kind for les in lesions) == {"calcification": 1872, "mass": 1696}
    labels = collections.Counter(les.attributes["pathology_label"] for les in lesions)
    assert labels == {"MALIGNANT": 1457, "BENIGN": 1429, "BENIGN_WITHOUT_CALLBACK": 682}
    assert collections.Counter(les.pathology for les in lesions)["benign"] == 1429 + 682
    assert sum(len(rec.lesions) > 1 for rec in real_records) == 293
    assert max(len(rec.lesions) for rec in real_records) == 7


def test_real_csv_first_mass(real_records):
    record = next(r for r in real_records if r.image_id == "Mass-Training_P_00001_LEFT_CC")
    assert (record.patient_id, record.tissue, record.laterality, record.view) == (
        "P_00001",
        "3",
        "L",
        "CC",
    )
    assert record.path.startswith("Mass-Training_P_00001_LEFT_CC/") and record.shape is None
    (lesion,) = record.lesions
    assert (lesion.kind, lesion.pathology) == ("mass", "malignant")
    attrs = lesion.attributes
    assert attrs["mass_shape"] == "IRREGULAR-ARCHITECTURAL_DISTORTION"
    assert (attrs["mass_margins"], attrs["assessment"], attrs["subtlety"]) == ("SPICULATED", 4, 4)
    assert lesion.mask_path.startswith("Mass-Training_P_00001_LEFT_CC_1/")
    assert lesion.mask_path.endswith("/000001.dcm")  # embedded newline stripped
    assert (attrs["csv"], attrs["line"]) == ("mass_case_description_train_set.csv", 2)


def test_real_calc_density_column_and_lines(real_records):
    record = next(r for r in real_records if r.image_id == "Calc-Test_P_00038_LEFT_MLO")
    assert record.tissue == "2"  # read from 'breast density' (with a space)
    lesion = record.lesions[0]
    assert lesion.attributes["calc_type"] == "PUNCTATE-PLEOMORPHIC"
    # Row 2 of the file spans lines 4-5: the row before it holds an embedded newline.
    assert lesion.attributes["line"] == 4
    assert lesion.attributes["crop_csv_path"].endswith("/000001.dcm")


def test_patient_keeps_both_breasts_and_views(real_records):
    views = {(r.laterality, r.view) for r in real_records if r.patient_id == "P_00001"}
    assert views == {("L", "CC"), ("L", "MLO")}
    both = {(r.laterality, r.view) for r in real_records if r.patient_id == "P_00038"}
    assert {"L", "R"} == {side for side, _ in both}


# --------------------------------------------------------------------------- malformed CSVs


def _write_csv(path: Path, rows: list[list], header=None) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header or HEADERS["mass"])
        writer.writerows(rows)
    return path


def _row(**changes) -> list:
    folder = "Mass-Training_P_00001_LEFT_CC"
    values = dict(
        zip(
            HEADERS["mass"],
            [
                "P_00001",
                "3",
                "LEFT",
                "CC",
                "1",
                "mass",
                "OVAL",
                "CIRCUMSCRIBED",
                "4",
                "BENIGN",
                "3",
                f"{folder}/a/b/000000.dcm",
                f"{folder}_1/c/d/000000.dcm",
                f"{folder}_1/c/d/000001.dcm\n",
            ],
        )
    )
    values.update({(k if k in values else k.replace("_", " ")): v for k, v in changes.items()})
    return list(values.values())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"left_or_right_breast": "BOTH"}, "'left or right breast' must be LEFT or RIGHT"),
        ({"pathology": "UNKNOWN"}, "'pathology' must be one of"),
        ({"subtlety": "high"}, "'subtlety' must be an integer, found 'high'"),
        ({"patient_id": "P_00002"}, "does not agree with patient 'P_00002'"),
        ({"ROI_mask_file_path": "../../etc/passwd"}, "must be a path inside the dataset folder"),
        ({"image_file_path": "/abs/000000.dcm"}, "must be a path inside the dataset folder"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, changes, message):
    path = _write_csv(tmp_path / "mass.csv", [_row(), _row(abnormality_id="2", **changes)])
    with pytest.raises(MammosegDataError, match=message) as info:
        read_case_descriptions([path])
    assert "mass.csv line 4" in str(info.value)  # the first row spans lines 2-3


def test_missing_column_and_repeated_abnormality(tmp_path):
    header = [c for c in HEADERS["mass"] if c != "breast_density"]
    path = _write_csv(tmp_path / "a.csv", [], header=header)
    with pytest.raises(MammosegDataError, match="a.csv line 1: missing column"):
        read_case_descriptions([path])
    path = _write_csv(tmp_path / "b.csv", [_row(), _row()])
    with pytest.raises(MammosegDataError, match="b.csv line 4: abnormality 1 of image"):
        read_case_descriptions([path])


# --------------------------------------------------------------------------- phantom downloads


@pytest.mark.parametrize("naming", ["legacy", "nbia"])
def test_phantom_loads_with_masks_told_by_content(tmp_path, naming):
    root = write_cbis_phantom(tmp_path, 8, seed=1, size=128, naming=naming, progress=False)
    records = load_records("cbis-ddsm", root)
    n_rows = sum(len(rec.lesions) for rec in read_case_descriptions(sorted(root.glob("*.csv"))))
    assert sum(len(r.lesions) for r in records) == n_rows and len(records) >= 8
    names = collections.Counter()
    for record in records:
        image, _ = read_dicom(record.path)
        assert image.shape == record.shape and record.shape[0] == 128
        for lesion in record.lesions:
            mask = read_dicom(lesion.mask_path)[0]
            crop = read_dicom(lesion.attributes["crop_path"], min_size=1)[0]
            assert set(np.unique(mask)) <= {0.0, 1.0} and len(np.unique(crop)) > 2
            names[Path(lesion.mask_path).name] += 1
    assert len(names) == 2  # the mask was the first file for some lesions, the second for others


def test_phantom_mask_matches_the_lesion(phantom_root):
    records = load_records("cbis-ddsm", phantom_root, measure_masks=True)
    for record in records:
        mask = load_mask(record, None, kinds=None)
        assert mask.shape == record.shape and mask.any()
        for lesion in record.lesions:
            row, col = lesion.center
            assert mask[int(round(row)), int(round(col))] == 1  # the centroid lies inside
    odd = [les for rec in records for les in rec.lesions if "mask_shape" in les.attributes]
    assert odd, "the phantom stores some masks at 87 % of the image size"


def test_phantom_is_deterministic(tmp_path):
    def digest(root: Path) -> str:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        return hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()

    a = digest(write_cbis_phantom(tmp_path / "a", 4, seed=5, size=96, progress=False))
    b = digest(write_cbis_phantom(tmp_path / "b", 4, seed=5, size=96, progress=False))
    c = digest(write_cbis_phantom(tmp_path / "c", 4, seed=6, size=96, progress=False))
    assert a == b != c


def test_generate_dispatches_to_cbis_layout(tmp_path):
    root = write_cbis_phantom(tmp_path, n_images=4, seed=0, size=96)
    assert {p.name for p in root.glob("*.csv")} == {
        f"{k}_case_description_{s}_set.csv" for k in ("mass", "calc") for s in ("train", "test")
    }
    assert load_records("cbis-ddsm", root)[0].shape[0] == 96


def test_missing_files_are_reported_together(tmp_path, phantom_root):
    root = Path(shutil.copytree(phantom_root, tmp_path / "copy"))
    records = load_records("cbis-ddsm", root)
    gone = [records[0].image_id, f"{records[1].image_id}_1"]
    for name in gone:
        shutil.rmtree(root / name)
    with pytest.raises(MammosegDataError, match="2 image or ROI folder") as info:
        load_records("cbis-ddsm", root)
    assert all(name in str(info.value) for name in gone)
    with pytest.warns(UserWarning, match="skipped 2 missing file"):
        kept = load_records("cbis-ddsm", root, missing="skip")
    assert len(kept) == len(records) - 1
    assert kept[0].lesions[0].mask_path is None  # the one whose ROI folder went


def test_mask_of_another_aspect_is_skipped_with_warning(tmp_path, phantom_root):
    root = Path(shutil.copytree(phantom_root, tmp_path / "copy"))
    record = load_records("cbis-ddsm", root)[2]
    height, width = record.shape
    path = Path(record.lesions[0].mask_path)
    narrow = np.zeros((height, width // 2), np.uint8)
    narrow[10:20, 10:20] = 255  # still two values at most
    write_dicom(path, narrow)
    with pytest.warns(UserWarning, match=f"{record.image_id}_1: mask {height}x{width // 2}"):
        again = load_records("cbis-ddsm", root)[2]
    assert again.lesions[0].mask_path is None and "mask_skipped" in again.lesions[0].attributes


def test_loader_arguments(tmp_path, phantom_root):
    with pytest.raises(MammosegDataError, match="no case-description CSVs"):
        load_records("cbis-ddsm", tmp_path)
    with pytest.raises(
        ValueError,
        match=r"`missing` must be one of \('raise', 'skip'\), received 'ignore'",
    ):
        load_records("cbis-ddsm", phantom_root, missing="ignore")
    with pytest.raises(
        ValueError,
        match=r"`errors` must be one of \('raise', 'skip'\), received 'skipp'; did you mean 'skip'",
    ):
        load_records("cbis-ddsm", phantom_root, errors="skipp")
    by_folder = load_records("cbis-ddsm", phantom_root, csv=phantom_root)
    assert [r.image_id for r in by_folder] == sorted(r.image_id for r in by_folder)
    with pytest.raises(ValueError, match="`naming` must be one of"):
        write_cbis_phantom(tmp_path, 2, size=96, naming="tcia")


def test_mask_geometry():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:4, 4:8] = 255
    (row, col), radius = mask_geometry(mask)
    assert (row, col) == (2.5, 5.5) and radius == pytest.approx(np.sqrt(8 / np.pi))
    (row, col), radius = mask_geometry(mask, (20, 40))  # image twice the mask's size
    assert (row, col) == (5.5, 11.5) and radius == pytest.approx(np.sqrt(32 / np.pi))
    assert mask_geometry(np.zeros((4, 4))) is None


def test_short_row_and_undecodable_csv(tmp_path):
    path = _write_csv(tmp_path / "mass_case_description_train_set.csv", [_row()[:5]])
    with pytest.raises(
        MammosegDataError, match=r"mass_case_description_train_set.csv line 2: row has 5 cells"
    ):
        read_case_descriptions([path])
    path.write_bytes(path.read_bytes().replace(b"P_", b"\xff\xfe", 1))
    with pytest.raises(MammosegDataError, match=r"train_set.csv line \d+: not UTF-8 text"):
        read_case_descriptions([path])


# --------------------------------------------------------------------------- bad files (issue 15)


def _copy(phantom_root, tmp_path) -> tuple[Path, list]:
    root = Path(shutil.copytree(phantom_root, tmp_path / "copy"))
    return root, load_records("cbis-ddsm", root)


def test_all_zero_roi_mask_is_an_error_naming_the_file(tmp_path, phantom_root):
    root, records = _copy(phantom_root, tmp_path)
    record = records[1]
    path = Path(record.lesions[0].mask_path)
    shape = read_dicom(path)[0].shape
    write_dicom(path, np.zeros(shape, np.uint8))
    with pytest.raises(MammosegDataError) as info:
        load_records("cbis-ddsm", root)
    assert str(info.value) == f"{path}: the ROI mask is all zero: it marks no lesion pixel"


def test_mask_whose_lesion_the_sampled_rows_miss_is_not_blank(tmp_path, phantom_root):
    # sample_rows reads 32 of the mask's rows; a lesion on one other row is still a lesion.
    root, records = _copy(phantom_root, tmp_path)
    path = Path(records[1].lesions[0].mask_path)
    shape = read_dicom(path)[0].shape
    sampled = set(np.linspace(0, shape[0] - 1, 32).round().astype(int))
    row = next(r for r in range(shape[0]) if r not in sampled)
    mask = np.zeros(shape, np.uint8)
    mask[row, 5:9] = 255
    write_dicom(path, mask)
    again = load_records("cbis-ddsm", root)[1]
    assert again.lesions[0].mask_path == str(path)


def test_all_one_roi_mask_is_an_error(tmp_path, phantom_root):
    root, records = _copy(phantom_root, tmp_path)
    path = Path(records[0].lesions[0].mask_path)
    write_dicom(path, np.full(read_dicom(path)[0].shape, 255, np.uint8))
    with pytest.raises(MammosegDataError, match="the ROI mask marks every pixel as lesion") as info:
        load_records("cbis-ddsm", root)
    assert str(info.value).startswith(str(path))


def test_one_bad_dicom_among_many_is_skipped_when_asked(tmp_path, phantom_root):
    root, records = _copy(phantom_root, tmp_path)
    bad_image, bad_mask = records[2], records[5]
    Path(bad_image.path).write_bytes(b"DICM? no: a torn download")
    mask_path = Path(bad_mask.lesions[0].mask_path)
    write_dicom(mask_path, np.zeros(read_dicom(mask_path)[0].shape, np.uint8))
    with pytest.raises(MammosegDataError) as info:
        load_records("cbis-ddsm", root)
    assert str(info.value).startswith(f"{bad_image.path}: ")
    with pytest.warns(MammosegDataWarning) as caught:
        kept = load_records("cbis-ddsm", root, errors="skip")
    assert [r.image_id for r in kept] == [
        r.image_id for r in records if r.image_id not in (bad_image.image_id, bad_mask.image_id)
    ]
    assert kept == [r for r in records if r not in (bad_image, bad_mask)]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3
    assert messages[0].startswith(f"{bad_image.path}: ")
    assert messages[0].endswith(f"; skipped image {bad_image.image_id} (errors='skip')")
    assert messages[1] == (
        f"{mask_path}: the ROI mask is all zero: it marks no lesion pixel; "
        f"skipped image {bad_mask.image_id} (errors='skip')"
    )
    assert messages[2] == (
        f"{root}: skipped 2 of {len(records)} image(s) with a bad file (errors='skip'): "
        f"{bad_image.image_id}, {bad_mask.image_id}"
    )


def test_every_image_bad_is_still_an_error_with_skip(tmp_path):
    root = write_cbis_phantom(tmp_path / "one", 1, seed=2, size=96, progress=False)
    (image,) = load_records("cbis-ddsm", root)
    Path(image.path).write_bytes(b"garbage")
    with pytest.warns(MammosegDataWarning) as caught:
        with pytest.raises(MammosegDataError, match="empty dataset"):
            load_records("cbis-ddsm", root, errors="skip")
    assert str(caught[0].message).startswith(f"{image.path}: not a DICOM file")
    assert "skipped 1 of 1 image(s) with a bad file" in str(caught[-1].message)


def test_bad_csv_rows_are_skipped_with_their_image_when_asked(tmp_path):
    other = "Mass-Training_P_00002_RIGHT_MLO"
    good = _row(
        patient_id="P_00002",
        left_or_right_breast="RIGHT",
        image_view="MLO",
        image_file_path=f"{other}/a/b/000000.dcm",
        cropped_image_file_path=f"{other}_1/c/d/000000.dcm",
        ROI_mask_file_path=f"{other}_1/c/d/000001.dcm\n",
    )
    # P_00001 LEFT CC: abnormality 1 is fine, abnormality 2 (lines 4-5) has a bad subtlety;
    # keeping the image with one of its two lesions would be a wrong label, so it goes.
    rows = [_row(), _row(abnormality_id="2", subtlety="high"), good, ["P_9", "x"]]
    path = _write_csv(tmp_path / "mass.csv", rows)
    first = b"".join(path.read_bytes().splitlines(keepends=True)[1:3])  # lines 2-3, row 1
    with open(path, "ab") as handle:  # lines 9-10: row 1 again, with a byte that is not UTF-8
        handle.write(first.replace(b"OVAL", b"OV\xffL"))
    with pytest.raises(MammosegDataError, match=r"mass.csv line 4: 'subtlety' must be an integer"):
        read_case_descriptions([path])
    with pytest.warns(MammosegDataWarning) as caught:
        records = read_case_descriptions([path], errors="skip")
    assert [r.image_id for r in records] == [other]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 4
    assert messages[0] == (
        f"{path} line 4: 'subtlety' must be an integer, found 'high'; row skipped, and image "
        "'Mass-Training_P_00001_LEFT_CC' with it (errors='skip')"
    )
    assert messages[1].startswith(f"{path} line 8: row has 2 cells, the header has 14; row ")
    assert messages[2].startswith(f"{path} line 9: not UTF-8 text: byte 0xff; row skipped")
    assert (
        messages[3] == "skipped 3 bad CSV row(s) and the 1 image(s) they belong to (errors='skip')"
    )


def test_row_with_too_many_cells(tmp_path):
    path = _write_csv(tmp_path / "mass.csv", [_row(), [*_row(abnormality_id="2"), "extra"]])
    with pytest.raises(MammosegDataError) as info:
        read_case_descriptions([path])
    assert str(info.value) == f"{path} line 4: row has 15 cells, the header has 14"


def test_two_candidate_masks_in_one_roi_folder(tmp_path, phantom_root):
    root, records = _copy(phantom_root, tmp_path)
    lesion = records[3].lesions[0]
    mask_path = Path(lesion.mask_path)
    second = np.zeros(read_dicom(mask_path)[0].shape, np.uint8)
    second[:4, :4] = 255
    write_dicom(mask_path.parent / "000009.dcm", second)  # another two-valued file beside it
    with pytest.raises(MammosegDataError) as info:
        load_records("cbis-ddsm", root)
    message = str(info.value)
    assert message.startswith(f"{mask_path.parent}: two candidate ROI masks")
    assert str(mask_path) in message and "000009.dcm" in message
    with pytest.warns(MammosegDataWarning, match=f"skipped image {records[3].image_id}"):
        kept = load_records("cbis-ddsm", root, errors="skip")
    assert len(kept) == len(records) - 1
