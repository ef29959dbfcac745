"""The mini-MIAS reader on the real 110-image excerpt (../shared/data/mias-dev).

Every test here skips where the excerpt is absent (the `mias_dev` fixture in tests/conftest.py);
the reader's behaviour on synthetic Info.txt files with the real file's quirks is in test_mias.py.
"""

import re

import numpy as np
import pytest

from mammoseg.data.mias import parse_info, read_mias
from mammoseg.data.records import load_image, load_mask


@pytest.fixture(scope="module")
def real(mias_dev):
    return {r.image_id: r for r in read_mias(mias_dev)}


def test_real_counts(real):
    # Counted in ../shared/data/mias-dev/Info.txt: 111 data lines on 110 images; 75 NORM; 36
    # abnormality lines (CIRC 17, MISC 5, ASYM 14), 35 of them with coordinates; 21 mass lines
    # with coordinates on 20 images (mdb005 has two).
    assert list(real) == [f"mdb{n:03d}" for n in range(1, 111)]
    assert sum(len(r.lesions) for r in real.values()) == 36
    assert sum(not r.lesions for r in real.values()) == 75
    assert sum(r.has_lesion() for r in real.values()) == 20
    assert sum(r.has_lesion(None) for r in real.values()) == 34
    assert sum(len(r.lesion_radii()) for r in real.values()) == 21
    classes = [les.attributes["mias_class"] for r in real.values() for les in r.lesions]
    assert {c: classes.count(c) for c in set(classes)} == {"CIRC": 17, "MISC": 5, "ASYM": 14}


def test_real_records_fields(real):
    assert all(r.shape == (1024, 1024) for r in real.values())
    assert all(r.laterality == ("R" if int(ref[3:]) % 2 else "L") for ref, r in real.items())
    patients = {}
    for r in real.values():
        patients.setdefault(r.patient_id, []).append(r.image_id)
    assert len(patients) == 55 and all(len(v) == 2 for v in patients.values())
    assert patients["mias_p030"] == ["mdb059", "mdb060"]


def test_real_mdb059_has_a_mass_without_centre(real):
    (lesion,) = real["mdb059"].lesions
    assert (lesion.kind, lesion.pathology, lesion.center, lesion.radius) == (
        "mass",
        "benign",
        None,
        None,
    )
    assert real["mdb059"].tissue == "F" and not real["mdb059"].has_lesion()


def test_real_mdb005_has_two_circles(real):
    assert [(les.center, les.radius) for les in real["mdb005"].lesions] == [
        ((1024 - 133.0, 477.0), 30.0),
        ((1024 - 168.0, 500.0), 26.0),
    ]


def test_real_mdb001_mask(real):
    rec = real["mdb001"]
    mask = load_mask(rec)
    assert mask.shape == (1024, 1024)
    assert mask[1024 - 425, 535] == 1
    assert mask.sum() == pytest.approx(np.pi * 197**2, rel=0.01)
    assert mask[1024 - 425 - 198, 535] == 0 and mask[1024 - 425 - 197, 535] == 1
    small = load_mask(rec, 64)
    assert small[(1024 - 425) // 16, 535 // 16] == 1
    assert small.sum() == pytest.approx(np.pi * (197 / 16) ** 2, rel=0.05)


def test_real_image_loads(real):
    image = load_image(real["mdb001"], 64)
    assert image.shape == (64, 64) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.5


def test_real_info_is_crlf_with_header(mias_dev):
    raw = (mias_dev / "Info.txt").read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n")
    first_data = next(
        i for i, line in enumerate(raw.split(b"\r\n"), 1) if re.match(rb"mdb\d", line)
    )
    assert parse_info(mias_dev / "Info.txt")["mdb001"][2] == first_data
