"""verify_mias against SHA-256 sums, the sums file format, and safe archive extraction."""

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from mammoseg.data import MammosegDataError, MiasVerification, verify_mias
from mammoseg.data.verify import extract_archive, read_sums, standard_sums


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILES = {
    "Info.txt": b"mdb001 G CIRC B 535 425 197\r\n",
    "mdb001.pgm": b"P5 1",
    "mdb002.pgm": b"P5 2",
}


@pytest.fixture
def fake_copy(tmp_path):
    """A copy with mdb001 right, mdb002 altered, mdb003 absent and a stray mdb999."""
    sums = {name: _sha(data) for name, data in FILES.items()}
    sums["mdb003.pgm"] = _sha(b"P5 3")
    root = tmp_path / "mias"
    root.mkdir()
    for name, data in FILES.items():
        (root / name).write_bytes(data)
    (root / "mdb002.pgm").write_bytes(b"P5 2, re-encoded")
    (root / "mdb999.pgm").write_bytes(b"P5 9")
    (root / "Licence.txt").write_text("not checked")
    sums_file = tmp_path / "sums.txt"
    sums_file.write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    return root, sums_file, sums


def test_verify_reports_ok_missing_mismatched_and_unexpected(fake_copy):
    root, sums_file, sums = fake_copy
    report = verify_mias(root, sums_file)
    assert report == MiasVerification(
        root, ("Info.txt", "mdb001.pgm"), ("mdb003.pgm",), ("mdb002.pgm",), ("mdb999.pgm",)
    )
    assert not report.complete
    assert report.summary().splitlines() == [
        f"{root}: 2 ok, 1 missing, 1 mismatched of 4 files of the standard mini-MIAS",
        "  mismatched (not the standard content): mdb002.pgm",
        "  missing: mdb003.pgm",
        "  not in the standard archive: mdb999.pgm",
    ]
    assert verify_mias(root, sums) == report  # a mapping works as well as a file
    assert report.to_dict()["missing"] == ["mdb003.pgm"]


def test_verify_says_complete_when_every_file_matches(fake_copy):
    root, _, _ = fake_copy
    sums = {name: _sha(data) for name, data in FILES.items()}
    (root / "mdb002.pgm").write_bytes(FILES["mdb002.pgm"])
    report = verify_mias(root, sums)
    assert report.complete and len(report.ok) == 3 and report.missing == ()


def test_verify_refuses_a_missing_folder(tmp_path):
    with pytest.raises(MammosegDataError, match=f"{tmp_path / 'nowhere'}: not a folder"):
        verify_mias(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc  mdb001.pgm\n", r"sums.txt line 1: expected '<64 hex digits>  <file name>'"),
        (f"# comment\n\n{'a' * 64}  x\n{'b' * 64}  x\n", r"sums.txt line 4: 'x' is listed twice"),
        ("# only a comment\n", r"sums.txt: no checksum lines"),
    ],
)
def test_read_sums_names_the_bad_line(tmp_path, text, message):
    path = tmp_path / "sums.txt"
    path.write_text(text)
    with pytest.raises(MammosegDataError, match=message):
        read_sums(path)


def test_read_sums_accepts_the_binary_marker(tmp_path):
    path = tmp_path / "sums.txt"
    path.write_text(f"{'A' * 64} *mdb001.pgm\r\n")
    assert read_sums(path) == {"mdb001.pgm": "a" * 64}


def test_the_shipped_sums_are_the_standard_archive(shared_data):
    sums = standard_sums()
    assert len(sums) == 323 and "Info.txt" in sums and "mdb322.pgm" in sums
    assert sums == read_sums(shared_data / "mias-sha256.txt")


def test_verify_the_real_development_subset(mias_dev):
    report = verify_mias(mias_dev)
    assert len(report.ok) == 110 and report.ok[0] == "mdb001.pgm" and report.ok[-1] == "mdb110.pgm"
    assert report.missing == tuple(f"mdb{k:03d}.pgm" for k in range(111, 323))
    assert report.mismatched == ("Info.txt",)  # cut to 110 images
    assert report.unexpected == ()
    assert report.summary().startswith(f"{mias_dev}: 110 ok, 212 missing, 1 mismatched of 323")


# === extraction: nothing outside the target folder, nothing but plain files ===


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_archive_writes_plain_files(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [("mias/mdb001.pgm", b"P5 1"), ("./Info.txt", b"i")])
    written = extract_archive(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "Info.txt",
        "mias/mdb001.pgm",
    ]
    assert (tmp_path / "out" / "mias" / "mdb001.pgm").read_bytes() == b"P5 1"


@pytest.mark.parametrize("name", ["../evil.pgm", "/tmp/evil.pgm", "a/../../evil.pgm"])
def test_extract_archive_refuses_path_traversal(tmp_path, name):
    archive = _tar(tmp_path / "a.tar.gz", [("mdb001.pgm", b"P5 1"), (name, b"evil")])
    with pytest.raises(MammosegDataError, match=f"unsafe archive member '{name}'"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before the first byte is written
    assert not (tmp_path / "evil.pgm").exists()


def test_extract_archive_refuses_links_in_tar_and_zip(tmp_path):
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("mdb001.pgm")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(MammosegDataError, match="'mdb001.pgm': a link or special file"):
        extract_archive(archive, tmp_path / "out")
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("mdb001.pgm")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(MammosegDataError, match="'mdb001.pgm': a symbolic link"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_archive_refuses_a_zip_bomb_and_a_non_archive(tmp_path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mdb001.pgm", b"\0" * 10_000)
    with pytest.raises(MammosegDataError, match="10,000 bytes, over the limit of 1,000"):
        extract_archive(archive, tmp_path / "out", max_bytes=1000)
    junk = tmp_path / "page.html"
    junk.write_text("<html>Not found</html>")
    with pytest.raises(MammosegDataError, match=f"{junk}: not a tar.gz or zip archive"):
        extract_archive(junk, tmp_path / "out")


def test_verify_a_folder_given_as_text(fake_copy):
    root, sums_file, _ = fake_copy
    assert verify_mias(str(root), str(sums_file)).root == Path(root)
