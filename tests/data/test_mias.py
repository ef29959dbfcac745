"""The mini-MIAS reader on a synthetic Info.txt with the real file's quirks.

The tests on the real excerpt (../shared/data/mias-dev) are in test_mias_real.py.
"""

import warnings

import numpy as np
import pytest

import mammoseg.data as data
from mammoseg.data.errors import MammosegDataError, MammosegDataWarning
from mammoseg.data.mias import CLASS_TO_KIND, parse_info, patient_of, read_mias
from mammoseg.data.pgm import write_pgm
from mammoseg.data.records import load_image, load_instance_masks, load_mask

# As in the real file: centred title, free text (one line with a tab, one that is only spaces),
# a ruler of '=' and a blank line, all CRLF. The first data line is line 9.
HEADER = [
    "              MAMMOGRAPHIC IMAGE ANALYSIS SOCIETY",
    "                  MiniMammographic Database",
    "",
    "1st column: MIAS database reference number.",
    "\t    the abnormality.",
    "                       ",
    "=================================================================",
    "",
]
FIRST = len(HEADER) + 1

# x, y count from the bottom-left corner; every image is 64 x 64 except mdb008 (80 high, 48 wide).
LINES = [
    "mdb001 G CIRC B 10 20 5   ",  # line 9: row 64 - 20 = 44, col 10
    "mdb002 G SPIC M 40 50 3",  # line 10
    "mdb003 D NORM ",  # line 11: NORM lines end with a space in the real file
    "mdb004 D NORM ",  # line 12
    "mdb005 F CIRC B 20 30 4",  # line 13: two lines for one image
    "mdb005 F MISC B 26 30 4",  # line 14
    "mdb006 F CALC M 30 30 2",  # line 15
    "mdb007 G ARCH B 32 32 6",  # line 16
    "mdb008 G ASYM M 16 48 5",  # line 17: row 80 - 48 = 32
    "mdb009 F CIRC B  ",  # line 18: no coordinates (like the real mdb059)
    "mdb010 D CALC M *NOTE 3*",  # line 19: widely spread calcifications
]
SHAPES = {f"mdb{n:03d}": (64, 64) for n in range(1, 11)} | {"mdb008": (80, 48)}


def write_info(root, lines, header=HEADER):
    text = "\r\n".join([*header, *lines]) + "\r\n"
    (root / "Info.txt").write_bytes(text.encode("latin-1"))


def write_images(root, shapes):
    for refnum, shape in shapes.items():
        write_pgm(root / f"{refnum}.pgm", np.full(shape, 100, np.uint8))


@pytest.fixture
def mias_root(tmp_path):
    write_info(tmp_path, LINES)
    write_images(tmp_path, SHAPES)
    return tmp_path


@pytest.fixture
def records(mias_root):
    return {r.image_id: r for r in read_mias(mias_root)}


def error_from(root, lines, images=None, **kwargs):
    """Write a variant, read it, return the MammosegDataError it raised."""
    write_info(root, lines)
    write_images(root, images if images is not None else SHAPES)
    with pytest.raises(MammosegDataError) as info:
        read_mias(root, **kwargs)
    return info.value


# --------------------------------------------------------------------------- valid files


def test_one_record_per_image_in_file_order(records):
    assert list(records) == [f"mdb{n:03d}" for n in range(1, 11)]
    assert [len(r.lesions) for r in records.values()] == [1, 1, 0, 0, 2, 1, 1, 1, 1, 1]


def test_y_counts_from_the_bottom(records):
    rec = records["mdb001"]
    lesion = rec.lesions[0]
    assert lesion.center == (44.0, 10.0) and lesion.radius == 5.0
    assert lesion.attributes["mias_xy"] == (10.0, 20.0)
    mask = load_mask(rec)
    assert mask.shape == (64, 64)
    assert mask[44, 10] == 1 and mask[44, 15] == 1 and mask[44, 16] == 0
    assert mask[20, 10] == 0  # where the centre would be if y counted from the top
    assert mask.sum() == 81  # lattice points within 5 px


def test_y_uses_each_images_own_height(records):
    rec = records["mdb008"]
    assert rec.shape == (80, 48)
    assert rec.lesions[0].center == (32.0, 16.0)
    mask = load_mask(rec, kinds=None)
    assert mask.shape == (80, 48) and mask[32, 16] == 1 and mask[48, 16] == 0


def test_two_lines_of_one_image_are_ored(records):
    rec = records["mdb005"]
    assert [les.center for les in rec.lesions] == [(34.0, 20.0), (34.0, 26.0)]
    mask = load_mask(rec)
    # Two discs of 49 points, 6 px apart, share 1 + 5 + 1 = 7 points: 49 + 49 - 7 = 91.
    assert mask.sum() == 91
    assert mask[34, 16] == 1 and mask[34, 30] == 1 and mask[34, 31] == 0
    assert load_instance_masks(rec).shape == (64, 64, 2)


def test_laterality_patient_view_tissue(records):
    assert [r.laterality for r in records.values()] == ["R", "L"] * 5
    assert records["mdb001"].patient_id == records["mdb002"].patient_id == "mias_p001"
    assert records["mdb003"].patient_id == records["mdb004"].patient_id == "mias_p002"
    assert records["mdb002"].patient_id != records["mdb003"].patient_id
    assert {r.view for r in records.values()} == {"MLO"}
    assert [records[f"mdb00{n}"].tissue for n in (1, 3, 5)] == ["G", "D", "F"]
    assert all(r.source == "mias" for r in records.values())


def test_patient_of():
    assert patient_of("mdb001") == patient_of("mdb002") == "mias_p001"
    assert patient_of("mdb321") == patient_of("mdb322") == "mias_p161"


def test_class_and_severity_mapping(records):
    got = {
        ref: [(les.kind, les.pathology, les.attributes["mias_class"]) for les in r.lesions]
        for ref, r in records.items()
    }
    assert got["mdb001"] == [("mass", "benign", "CIRC")]
    assert got["mdb002"] == [("mass", "malignant", "SPIC")]
    assert got["mdb005"] == [("mass", "benign", "CIRC"), ("mass", "benign", "MISC")]
    assert got["mdb006"] == [("calcification", "malignant", "CALC")]
    assert got["mdb007"] == [("architectural_distortion", "benign", "ARCH")]
    assert got["mdb008"] == [("asymmetry", "malignant", "ASYM")]
    assert got["mdb003"] == got["mdb004"] == []
    assert CLASS_TO_KIND == {
        "CIRC": "mass",
        "SPIC": "mass",
        "MISC": "mass",
        "CALC": "calcification",
        "ARCH": "architectural_distortion",
        "ASYM": "asymmetry",
    }


def test_lines_without_coordinates_are_kept(records):
    no_xy = records["mdb009"].lesions[0]
    assert (no_xy.kind, no_xy.pathology, no_xy.center, no_xy.radius) == (
        "mass",
        "benign",
        None,
        None,
    )
    note = records["mdb010"].lesions[0]
    assert (note.kind, note.pathology, note.center) == ("calcification", "malignant", None)
    assert note.attributes["note"] == 3
    for ref in ("mdb009", "mdb010"):
        assert not records[ref].has_lesion(None)
        assert load_mask(records[ref], kinds=None).sum() == 0


def test_mask_kinds(records):
    assert load_mask(records["mdb006"]).sum() == 0  # calcification: not a mass
    assert load_mask(records["mdb006"], kinds=None).sum() == 13
    assert load_mask(records["mdb007"], kinds="architectural_distortion").sum() == 113


def test_parse_info_line_numbers(mias_root):
    entries = parse_info(mias_root / "Info.txt")
    assert entries["mdb001"][0] == "G" and entries["mdb001"][2] == FIRST
    assert entries["mdb005"][2] == FIRST + 4  # the image's first line
    assert len(entries["mdb005"][1]) == 2


def test_lf_line_endings_and_lower_case_note(tmp_path):
    # The same content with Unix line endings, as after a `dos2unix`.
    text = "\n".join([*HEADER, "mdb001 G CIRC B 10 20 5", "mdb002 D CALC B *note 3*"]) + "\n"
    (tmp_path / "Info.txt").write_text(text)
    write_images(tmp_path, {"mdb001": (64, 64), "mdb002": (64, 64)})
    recs = read_mias(tmp_path)
    assert recs[0].lesions[0].center == (44.0, 10.0)
    assert recs[1].lesions[0].attributes["note"] == 3


def test_load_records_dispatches_to_read_mias(mias_root):
    assert data.load_records("mias", mias_root) == read_mias(mias_root)
    recs = data.load_records("mias", mias_root, source="phantom")
    assert {r.source for r in recs} == {"phantom"}


# --------------------------------------------------------------------------- malformed lines


def check_line_error(err, root, line, *fragments):
    message = str(err)
    assert message.startswith(f"{root / 'Info.txt'} line {line}: "), message
    assert err.line == line and err.path == str(root / "Info.txt")
    for fragment in fragments:
        assert fragment in message, message


def test_five_field_line(tmp_path):
    err = error_from(tmp_path, [*LINES[:2], "mdb058 D CIRC B 318", *LINES[2:]])
    assert str(err).endswith(
        f"Info.txt line {FIRST + 2}: expected 3, 4, 6 or 7 fields, found 5: 'mdb058 D CIRC B 318'"
    )
    assert err.line == FIRST + 2


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("mdb003 X NORM", "background tissue 'X' is not one of ('F', 'G', 'D')"),
        ("mdb003 D CIRX B 10 20 5", "class 'CIRX' is not one of"),
        ("mdb003 D CIRC B 1O 20 5", "x, y and radius must be numbers: 'mdb003 D CIRC B 1O 20 5'"),
        ("mdb003 D CIRC B 10 2O 5", "x, y and radius must be numbers"),
        ("mdb003 D CIRC X 10 20 5", "severity 'X' is not B or M"),
        ("mdb003 D CIRC", "class CIRC needs a severity (B or M)"),
        ("mdb003 D NORM B", "a NORM line has 3 fields, found 4"),
        ("mdb003 D CIRC B 10 20 0", "radius must be positive, found 0"),
        ("mdb003 D CIRC B 10 20 -4", "radius must be positive, found -4"),
        ("mdb003 D CALC M 10 20", "expected 3, 4, 6 or 7 fields, found 6"),
        ("mdb003 D CIRC B 10 20 5 6", "expected 3, 4, 6 or 7 fields, found 8"),
        ("mdb003 D", "expected 3, 4, 6 or 7 fields, found 2"),
        ("mdb03 D NORM", "reference number 'mdb03' is not of the form mdbNNN"),
        ("mbd003 D NORM", "reference number 'mbd003' is not of the form mdbNNN"),
        ("mbd003 D CIRC B 10 20 5", "reference number 'mbd003' is not of the form mdbNNN"),
        ("mdb003 D CIRC B nan 20 5", "x must be a finite number, found nan"),
        ("mdb003 D CIRC B 10 inf 5", "y must be a finite number, found inf"),
        ("mdb003 D CIRC B 10 20 NaN", "radius must be a finite number, found NaN"),
        ("mdb003 D CIRC B 10 20 5000", "radius 5000 is implausible"),
    ],
)
def test_malformed_line(tmp_path, bad, fragment):
    lines = [*LINES[:2], bad, *LINES[3:]]  # replaces line FIRST + 2 (mdb003)
    check_line_error(error_from(tmp_path, lines), tmp_path, FIRST + 2, fragment)


def test_malformed_line_on_a_later_line(tmp_path):
    lines = [*LINES, "mdb011 D CIRC B ten 20 5"]
    check_line_error(error_from(tmp_path, lines), tmp_path, FIRST + len(LINES), "numbers")


def test_one_image_with_two_tissues(tmp_path):
    lines = [*LINES[:5], "mdb005 G MISC B 26 30 4", *LINES[6:]]
    err = error_from(tmp_path, lines)
    check_line_error(
        err, tmp_path, FIRST + 5, f"mdb005 has tissue 'G' here but 'F' on line {FIRST + 4}"
    )


def test_norm_after_abnormality(tmp_path):
    err = error_from(tmp_path, [*LINES, "mdb001 G NORM "])
    check_line_error(err, tmp_path, FIRST + len(LINES), "mdb001 is listed as NORM but also has")


def test_abnormality_after_norm(tmp_path):
    # The same contradiction in the other order must not silently turn the image abnormal.
    err = error_from(tmp_path, [*LINES, "mdb003 D CIRC B 10 20 5"])
    check_line_error(err, tmp_path, FIRST + len(LINES), "mdb003")
    assert "NORM" in str(err)


@pytest.mark.parametrize(
    "bad, shown",
    [
        ("mdb003 D CIRC B 64 20 5", "x=64, y=20"),  # columns 0..63
        ("mdb003 D CIRC B -1 20 5", "x=-1, y=20"),
        ("mdb003 D CIRC B 10 0 5", "x=10, y=0"),  # y=0 would be row 64
        ("mdb003 D CIRC B 10 65 5", "x=10, y=65"),
    ],
)
def test_lesion_centre_outside_the_image(tmp_path, bad, shown):
    lines = [*LINES[:2], bad, *LINES[3:]]
    err = error_from(tmp_path, lines)
    check_line_error(
        err, tmp_path, FIRST + 2, f"mdb003: lesion centre {shown} lies outside", "64x64"
    )


def test_centre_on_the_edges_is_inside(tmp_path):
    write_info(tmp_path, ["mdb001 G CIRC B 0 64 3", "mdb002 G CIRC B 63 1 3"])
    write_images(tmp_path, {"mdb001": (64, 64), "mdb002": (64, 64)})
    first, second = read_mias(tmp_path)
    assert first.lesions[0].center == (0.0, 0.0) and second.lesions[0].center == (63.0, 63.0)
    assert load_mask(first)[0, 0] == 1 and load_mask(second)[63, 63] == 1


def test_lesion_outside_names_its_own_line(tmp_path):
    # mdb005's second line (FIRST + 5) is the wrong one, not its first line (FIRST + 4).
    lines = [*LINES[:5], "mdb005 F MISC B 26 90 4", *LINES[6:]]
    check_line_error(error_from(tmp_path, lines), tmp_path, FIRST + 5, "x=26, y=90")


# --------------------------------------------------------------------------- files and folders


def test_listed_image_missing(tmp_path):
    images = {k: v for k, v in SHAPES.items() if k not in ("mdb004", "mdb007")}
    err = error_from(tmp_path, LINES, images)
    message = str(err)
    assert message.startswith(f"{tmp_path / 'Info.txt'}: 2 listed image(s) not on disk: ")
    assert f"mdb004 (line {FIRST + 3}), mdb007 (line {FIRST + 7})" in message
    assert "missing='skip'" in message


def test_listed_image_missing_skip(tmp_path):
    write_info(tmp_path, LINES)
    write_images(tmp_path, {k: v for k, v in SHAPES.items() if k not in ("mdb004", "mdb007")})
    with pytest.warns(UserWarning, match="skipped 2 listed image") as caught:
        recs = read_mias(tmp_path, missing="skip")
    message = str(caught[0].message)
    assert f"mdb004 (line {FIRST + 3}), mdb007 (line {FIRST + 7})" in message
    assert str(tmp_path / "Info.txt") in message
    assert [r.image_id for r in recs] == [
        "mdb001",
        "mdb002",
        "mdb003",
        "mdb005",
        "mdb006",
        "mdb008",
        "mdb009",
        "mdb010",
    ]


def test_nothing_missing_no_warning(mias_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_mias(mias_root, missing="skip")) == 10


def test_all_images_missing_skip(tmp_path):
    write_info(tmp_path, LINES)
    with pytest.warns(UserWarning, match="skipped 10 listed image"):
        with pytest.raises(MammosegDataError, match="empty dataset: no listed image is on disk"):
            read_mias(tmp_path, missing="skip")


def test_root_does_not_exist(tmp_path):
    with pytest.raises(MammosegDataError, match="dataset folder does not exist") as info:
        read_mias(tmp_path / "no-such-folder")
    assert "no-such-folder" in str(info.value)


def test_folder_without_info(tmp_path):
    write_images(tmp_path, {"mdb001": (64, 64)})
    with pytest.raises(MammosegDataError, match="no Info.txt in the dataset folder") as info:
        read_mias(tmp_path)
    assert str(info.value).startswith(str(tmp_path))


def test_other_info_name(mias_root):
    (mias_root / "Info.txt").rename(mias_root / "info-v2.txt")
    assert len(read_mias(mias_root, info_name="info-v2.txt")) == 10
    with pytest.raises(MammosegDataError, match="no Info.txt"):
        read_mias(mias_root)


def test_info_without_data_lines(tmp_path):
    write_info(tmp_path, [])
    with pytest.raises(MammosegDataError, match=r"no data lines \(mdbNNN \.\.\.\) found") as info:
        read_mias(tmp_path)
    assert str(tmp_path / "Info.txt") in str(info.value)


def test_truncated_pgm_header(tmp_path):
    write_info(tmp_path, LINES[:2])
    write_images(tmp_path, {"mdb001": (64, 64)})
    (tmp_path / "mdb002.pgm").write_bytes(b"P5\n64")
    with pytest.raises(MammosegDataError, match=r"mdb002\.pgm: truncated PGM header"):
        read_mias(tmp_path)


def test_truncated_pgm_pixels(tmp_path):
    # read_mias only reads headers; the cut pixel data is reported when the image is loaded.
    write_info(tmp_path, LINES[:2])
    write_images(tmp_path, {"mdb001": (64, 64), "mdb002": (64, 64)})
    full = (tmp_path / "mdb002.pgm").read_bytes()
    (tmp_path / "mdb002.pgm").write_bytes(full[:-100])
    rec = read_mias(tmp_path)[1]
    with pytest.raises(MammosegDataError, match=r"mdb002\.pgm: truncated PGM") as info:
        load_image(rec)
    assert "64x64 (4096 pixel bytes), file holds 3996" in str(info.value)


def test_invalid_missing_argument(mias_root):
    with pytest.raises(
        ValueError, match=r"`missing` must be one of \('raise', 'skip'\), received 'ignore'"
    ):
        read_mias(mias_root, missing="ignore")
    with pytest.raises(
        ValueError,
        match=r"`errors` must be one of \('raise', 'skip'\), received 'Skip'; did you mean 'skip'",
    ):
        read_mias(mias_root, errors="Skip")


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("newline", [b"\r\n", b"\n", b"\r"])
def test_byte_order_mark_and_line_endings(tmp_path, bom, newline):
    # A BOM before a first data line (no header) must not hide mdb001 as header text.
    text = newline.join(line.encode("latin-1") for line in LINES) + newline
    (tmp_path / "Info.txt").write_bytes(bom + text)
    write_images(tmp_path, SHAPES)
    records = read_mias(tmp_path)
    assert [r.image_id for r in records][:2] == ["mdb001", "mdb002"]
    assert len(records) == 10
    assert records[0].lesions[0].center == (44.0, 10.0)


# --------------------------------------------------------------------------- errors="skip"


def test_bad_lines_are_skipped_with_their_image_when_asked(tmp_path):
    # line 14 (mdb005's second lesion) has a NaN x: mdb005 goes whole, its good line 13 too,
    # since keeping one of its two lesions would be a wrong label. Line 20 is mistyped (mbd011).
    lines = [*LINES]
    lines[5] = "mdb005 F MISC B nan 30 4"
    lines.append("mbd011 G CIRC B 10 20 5")
    write_info(tmp_path, lines)
    write_images(tmp_path, SHAPES)
    with pytest.raises(MammosegDataError, match=r"Info.txt line 14: x must be a finite number"):
        read_mias(tmp_path)
    with pytest.warns(MammosegDataWarning) as caught:
        records = read_mias(tmp_path, errors="skip")
    ids = [r.image_id for r in records]
    assert ids == [f"mdb{n:03d}" for n in range(1, 11) if n != 5]
    info = tmp_path / "Info.txt"
    messages = [str(w.message) for w in caught]
    assert messages == [
        f"{info} line 14: x must be a finite number, found nan: 'mdb005 F MISC B nan 30 4'; "
        "line skipped, and image mdb005 with it (errors='skip')",
        f"{info} line 20: reference number 'mbd011' is not of the form mdbNNN: "
        "'mbd011 G CIRC B 10 20 5'; line skipped (errors='skip')",
        f"{info}: skipped 2 bad line(s) and the 1 image(s) they name (errors='skip')",
    ]


def test_bad_pgm_and_lesion_outside_are_skipped_when_asked(tmp_path):
    lines = [*LINES]
    lines[0] = "mdb001 G CIRC B 70 20 5"  # x = 70 in a 64-wide image
    write_info(tmp_path, lines)
    write_images(tmp_path, SHAPES)
    (tmp_path / "mdb004.pgm").write_bytes(b"P5\n64")
    with pytest.warns(MammosegDataWarning) as caught:
        records = read_mias(tmp_path, errors="skip")
    assert [r.image_id for r in records] == [f"mdb{n:03d}" for n in range(1, 11) if n not in (1, 4)]
    info = tmp_path / "Info.txt"
    messages = [str(w.message) for w in caught]
    assert messages[0] == (
        f"{info} line 9: mdb001: lesion centre x=70, y=20 lies outside the 64x64 image; "
        "skipped image mdb001 (errors='skip')"
    )
    assert messages[1].startswith(f"{tmp_path / 'mdb004.pgm'}: truncated PGM header")
    assert messages[1].endswith("; skipped image mdb004 (errors='skip')")
    assert messages[2] == (
        f"{info}: skipped 2 of 10 image(s) with a bad PGM or lesion (errors='skip'): mdb001, mdb004"
    )


def test_every_line_bad_is_still_an_error_with_skip(tmp_path):
    write_info(tmp_path, ["mdb001 G CIRC B 10 20 -5"])
    with pytest.warns(MammosegDataWarning) as caught:
        with pytest.raises(MammosegDataError, match=r"no data lines \(mdbNNN \.\.\.\) found"):
            read_mias(tmp_path, errors="skip")
    assert "line 9: radius must be positive, found -5" in str(caught[0].message)
    assert "skipped 1 bad line(s) and the 1 image(s)" in str(caught[1].message)
