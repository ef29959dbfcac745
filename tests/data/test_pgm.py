"""Binary PGM reading and writing, and the data-error family."""

import numpy as np
import pytest

from mammoseg.data.errors import MammosegDataError
from mammoseg.data.pgm import read_pgm, read_pgm_shape, write_pgm

# The header every real MIAS image carries (GIMP wrote them).
GIMP_HEADER = b"P5\n# CREATOR: GIMP PNM Filter Version 1.1\n%d %d\n255\n"


# --------------------------------------------------------------------------- errors


def test_data_error_names_file_and_line():
    err = MammosegDataError("expected 3, 4, 6 or 7 fields, found 5", path="Info.txt", line=57)
    assert str(err) == "Info.txt line 57: expected 3, 4, 6 or 7 fields, found 5"
    assert err.path == "Info.txt" and err.line == 57


def test_data_error_file_only_and_bare_message():
    assert str(MammosegDataError("truncated PGM", path="mdb001.pgm")) == "mdb001.pgm: truncated PGM"
    bare = MammosegDataError("empty dataset")
    assert str(bare) == "empty dataset"
    assert bare.path is None and bare.line is None


def test_data_error_is_a_value_error():
    # Callers that only know ValueError still catch data faults.
    with pytest.raises(ValueError, match="bad"):
        raise MammosegDataError("bad", path="x.pgm")


# --------------------------------------------------------------------------- round trips


def test_round_trip_uint8(tmp_path):
    pixels = np.arange(7 * 5, dtype=np.uint8).reshape(7, 5) * 7
    write_pgm(tmp_path / "a.pgm", pixels)
    data = (tmp_path / "a.pgm").read_bytes()
    assert data.startswith(b"P5\n5 7\n255\n")  # width first, then height
    assert len(data) == len(b"P5\n5 7\n255\n") + 35
    read, maxval = read_pgm(tmp_path / "a.pgm")
    assert maxval == 255 and read.dtype == np.uint8 and read.shape == (7, 5)
    np.testing.assert_array_equal(read, pixels)
    assert read_pgm_shape(tmp_path / "a.pgm") == (7, 5)
    assert not (tmp_path / "a.pgm.part").exists()


def test_round_trip_uint16_is_big_endian(tmp_path):
    pixels = np.array([[0, 1, 256], [4095, 40000, 65535]], dtype=np.uint16)
    write_pgm(tmp_path / "b.pgm", pixels)
    data = (tmp_path / "b.pgm").read_bytes()
    header = b"P5\n3 2\n65535\n"
    assert data[: len(header)] == header
    assert (
        data[len(header) : len(header) + 6] == b"\x00\x00\x00\x01\x01\x00"
    )  # most significant first
    read, maxval = read_pgm(tmp_path / "b.pgm")
    assert maxval == 65535 and read.dtype == np.uint16
    np.testing.assert_array_equal(read, pixels)


def test_round_trip_12_bit(tmp_path):
    pixels = np.array([[0, 2048, 4095]], dtype=np.uint16)
    write_pgm(tmp_path / "c.pgm", pixels, maxval=4095)
    read, maxval = read_pgm(tmp_path / "c.pgm")
    assert maxval == 4095
    np.testing.assert_array_equal(read, pixels)


def test_header_with_comment_like_real_mias(tmp_path):
    body = bytes(range(12))
    (tmp_path / "mdb001.pgm").write_bytes(GIMP_HEADER % (4, 3) + body)
    pixels, maxval = read_pgm(tmp_path / "mdb001.pgm")
    assert maxval == 255 and pixels.shape == (3, 4)
    assert pixels[0].tolist() == [0, 1, 2, 3] and pixels[2, 3] == 11
    assert read_pgm_shape(tmp_path / "mdb001.pgm") == (3, 4)


def test_comments_between_every_token(tmp_path):
    header = b"P5 # magic\n# a whole comment line\n2 # width\n2\n#maxval next\n255\n"
    (tmp_path / "x.pgm").write_bytes(header + b"\x01\x02\x03\x04")
    pixels, _ = read_pgm(tmp_path / "x.pgm")
    assert pixels.tolist() == [[1, 2], [3, 4]]


def test_pixels_that_look_like_header_bytes(tmp_path):
    # The first pixels are '#', '\n', ' ' and '1': only one whitespace byte ends the header.
    pixels = np.array([[35, 10], [32, 49]], dtype=np.uint8)
    write_pgm(tmp_path / "y.pgm", pixels)
    read, _ = read_pgm(tmp_path / "y.pgm")
    np.testing.assert_array_equal(read, pixels)


def test_read_returns_a_writable_copy(tmp_path):
    write_pgm(tmp_path / "z.pgm", np.zeros((2, 2), np.uint8))
    pixels, _ = read_pgm(tmp_path / "z.pgm")
    pixels[0, 0] = 9  # np.frombuffer alone would be read-only
    assert pixels[0, 0] == 9


def test_real_mias_image(mias_dev):
    pixels, maxval = read_pgm(mias_dev / "mdb001.pgm")
    assert pixels.shape == (1024, 1024) and pixels.dtype == np.uint8 and maxval == 255
    assert pixels.max() > 200 and pixels[0, 0] < 50  # bright breast, dark background corner
    assert read_pgm_shape(mias_dev / "mdb001.pgm") == (1024, 1024)


# --------------------------------------------------------------------------- errors


def test_truncated_pixels(tmp_path):
    (tmp_path / "cut.pgm").write_bytes(GIMP_HEADER % (4, 3) + bytes(10))
    with pytest.raises(MammosegDataError, match="truncated PGM") as info:
        read_pgm(tmp_path / "cut.pgm")
    message = str(info.value)
    assert "cut.pgm" in message and "4x3" in message and "file holds 10" in message
    assert info.value.path == str(tmp_path / "cut.pgm")


def test_truncated_16_bit_pixels(tmp_path):
    # 2 x 2 pixels of 2 bytes each need 8 bytes; 7 is one short.
    (tmp_path / "cut16.pgm").write_bytes(b"P5\n2 2\n65535\n" + bytes(7))
    with pytest.raises(MammosegDataError, match=r"cut16\.pgm: truncated PGM.*\(8 pixel bytes\)"):
        read_pgm(tmp_path / "cut16.pgm")


def test_truncated_header(tmp_path):
    (tmp_path / "head.pgm").write_bytes(b"P5\n# CREATOR: GIMP\n1024")
    with pytest.raises(MammosegDataError, match=r"head\.pgm: truncated PGM header"):
        read_pgm(tmp_path / "head.pgm")
    with pytest.raises(MammosegDataError, match=r"head\.pgm: truncated PGM header"):
        read_pgm_shape(tmp_path / "head.pgm")


def test_extra_bytes(tmp_path):
    (tmp_path / "long.pgm").write_bytes(GIMP_HEADER % (4, 3) + bytes(13))
    with pytest.raises(MammosegDataError, match=r"long\.pgm: wrongly sized PGM") as info:
        read_pgm(tmp_path / "long.pgm")
    assert "12 pixel bytes" in str(info.value) and "file holds 13" in str(info.value)


@pytest.mark.parametrize("magic", [b"P2", b"P6", b"GIF89a"])
def test_not_binary_pgm(tmp_path, magic):
    (tmp_path / "other.pgm").write_bytes(magic + b"\n2 2\n255\n" + bytes(4))
    with pytest.raises(MammosegDataError, match="not a binary PGM") as info:
        read_pgm(tmp_path / "other.pgm")
    assert "other.pgm" in str(info.value) and repr(magic[:8]) in str(info.value)


def test_malformed_header(tmp_path):
    (tmp_path / "bad.pgm").write_bytes(b"P5\nwide 2\n255\n" + bytes(4))
    with pytest.raises(MammosegDataError, match=r"bad\.pgm: malformed PGM header"):
        read_pgm(tmp_path / "bad.pgm")


@pytest.mark.parametrize(
    "header, shown",
    [
        (b"P5\n0 2\n255\n", "width=0"),
        (b"P5\n2 -1\n255\n", "height=-1"),
        (b"P5\n2 2\n0\n", "maxval=0"),
        (b"P5\n2 2\n65536\n", "maxval=65536"),
    ],
)
def test_invalid_header_values(tmp_path, header, shown):
    (tmp_path / "inv.pgm").write_bytes(header + bytes(8))
    with pytest.raises(MammosegDataError, match="invalid PGM header") as info:
        read_pgm(tmp_path / "inv.pgm")
    assert shown in str(info.value) and "inv.pgm" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(MammosegDataError, match="cannot read image") as info:
        read_pgm(tmp_path / "mdb999.pgm")
    assert "mdb999.pgm" in str(info.value)
    with pytest.raises(MammosegDataError, match=r"mdb999\.pgm: cannot read image"):
        read_pgm_shape(tmp_path / "mdb999.pgm")


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((2, 2), np.float32), np.zeros((2, 2, 3), np.uint8), np.zeros(4, np.uint8)],
    ids=["float32", "3-D", "1-D"],
)
def test_write_rejects_other_arrays(tmp_path, pixels):
    with pytest.raises(ValueError, match="`pixels` must be a 2-D uint8 or uint16 array"):
        write_pgm(tmp_path / "w.pgm", pixels)
    assert not (tmp_path / "w.pgm").exists()


@pytest.mark.parametrize(
    "pixels, maxval",
    [
        (np.zeros((2, 2), np.uint8), 1000),  # 1-byte samples under a 2-byte header
        (np.zeros((2, 2), np.uint16), 255),  # 2-byte samples under a 1-byte header
        (np.full((2, 2), 200, np.uint8), 100),  # samples above maxval
    ],
    ids=["uint8-maxval-1000", "uint16-maxval-255", "above-maxval"],
)
def test_write_rejects_maxval_that_does_not_fit_the_pixels(tmp_path, pixels, maxval):
    # Otherwise write_pgm writes a file that read_pgm rejects or misreads.
    with pytest.raises(ValueError, match="`maxval`"):
        write_pgm(tmp_path / "m.pgm", pixels, maxval=maxval)


@pytest.mark.parametrize(
    "header, body, message",
    [
        (b"P5\n2 1\n100\n", bytes([50, 200]), "sample value 200 exceeds the header's maxval 100"),
        # 4095 and 1 written little-endian read big-endian as 65295 and 256.
        (
            b"P5\n2 1\n4095\n",
            np.array([4095, 1], "<u2").tobytes(),
            "sample value 65295 exceeds the header's maxval 4095 (the samples fit maxval if "
            "read little-endian",
        ),
        (b"P5\n1 1\n1000\n", np.array([1001], ">u2").tobytes(), "sample value 1001 exceeds"),
    ],
)
def test_samples_above_maxval(tmp_path, header, body, message):
    path = tmp_path / "bad.pgm"
    path.write_bytes(header + body)
    with pytest.raises(MammosegDataError) as info:
        read_pgm(path)
    assert message in str(info.value) and "bad.pgm" in str(info.value)
