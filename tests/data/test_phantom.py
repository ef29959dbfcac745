"""The built-in phantom: determinism, the MIAS layout, the cache and the MIAS calibration."""

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import mammoseg.data as data
from mammoseg.data import phantom
from mammoseg.data.mias import read_mias
from mammoseg.data.pgm import read_pgm, read_pgm_shape
from mammoseg.data.records import load_image, load_mask

# --------------------------------------------------------------------------- generate


def files_of(root):
    return {p.name: p.read_bytes() for p in sorted(Path(root).iterdir())}


def test_generate_is_deterministic(tmp_path):
    a = phantom.generate(tmp_path / "a", n_images=4, seed=3, size=64, progress=False)
    b = phantom.generate(tmp_path / "b", n_images=4, seed=3, size=64, progress=False)
    assert a == tmp_path / "a"
    files = files_of(a)
    assert sorted(files) == ["Info.txt", "mdb001.pgm", "mdb002.pgm", "mdb003.pgm", "mdb004.pgm"]
    assert files == files_of(b)


def test_generate_seed_changes_every_image(tmp_path):
    a = files_of(phantom.generate(tmp_path / "a", n_images=4, seed=3, size=64, progress=False))
    c = files_of(phantom.generate(tmp_path / "c", n_images=4, seed=4, size=64, progress=False))
    for name in ("mdb001.pgm", "mdb002.pgm", "mdb003.pgm", "mdb004.pgm"):
        assert a[name] != c[name], name


def test_image_does_not_depend_on_n_images(tmp_path):
    two = files_of(phantom.generate(tmp_path / "two", n_images=2, seed=0, size=64, progress=False))
    four = files_of(
        phantom.generate(tmp_path / "four", n_images=4, seed=0, size=64, progress=False)
    )
    assert two["mdb001.pgm"] == four["mdb001.pgm"] and two["mdb002.pgm"] == four["mdb002.pgm"]


def test_info_txt_is_mias_like(tiny_phantom):
    raw = (Path(tiny_phantom[0].path).parent / "Info.txt").read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n") and raw.endswith(b"\r\n")
    lines = raw.decode("ascii").split("\r\n")
    data_lines = [line for line in lines if line.startswith("mdb")]
    assert "n_images=12 seed=0 size=128 normal_fraction=0.2" in raw.decode("ascii")
    assert len({line.split()[0] for line in data_lines}) == 12
    for line in data_lines:
        fields = line.split()
        assert len(fields) in (3, 7), line
        if len(fields) == 3:
            assert fields[2] == "NORM" and line.endswith("NORM ")  # trailing space, as in MIAS


def test_read_back_matches_the_synthesised_images(tiny_phantom):
    # Regenerate each image from its own generator: the PGM holds its pixels and Info.txt its
    # lesions, with y counted from the bottom (row = size - y) as in MIAS.
    assert len(tiny_phantom) == 12
    for index, rec in enumerate(tiny_phantom):
        assert rec.source == "phantom" and rec.shape == (128, 128)
        assert rec.image_id == f"mdb{index + 1:03d}"
        ph = phantom.synthesize_mammogram(
            np.random.default_rng([0, index]),
            (128, 128),
            normal_fraction=0.2,
            mirror=index % 2 == 0,
        )
        pixels, maxval = read_pgm(rec.path)
        assert maxval == 255
        np.testing.assert_array_equal(pixels, np.round(ph.image * 255).astype(np.uint8))
        assert rec.tissue == ph.tissue
        assert len(rec.lesions) == len(ph.lesions)
        for got, want in zip(rec.lesions, ph.lesions):
            assert got.kind == want.kind and got.pathology == want.pathology
            assert got.attributes["mias_class"] == want.mias_class
            assert got.center == (round(want.center[0]), round(want.center[1]))
            assert got.radius == max(round(want.radius), 1)


def test_truth_circles_match_the_drawn_masks(tiny_phantom):
    for index, rec in enumerate(tiny_phantom):
        ph = phantom.synthesize_mammogram(
            np.random.default_rng([0, index]),
            (128, 128),
            normal_fraction=0.2,
            mirror=index % 2 == 0,
        )
        truth = np.zeros((128, 128), bool)
        for lesion in ph.lesions:
            truth |= lesion.mask
        mask = load_mask(rec, kinds=None).astype(bool)
        if not truth.any():
            assert not mask.any()
            continue
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou > 0.6, (rec.image_id, iou)


def test_tiny_phantom_has_lesions_and_normals(tiny_phantom):
    # normal_fraction=0.2: mostly lesion images, among them masses; odd ids are right breasts.
    assert sum(r.has_lesion() for r in tiny_phantom) >= 6
    assert [r.laterality for r in tiny_phantom] == ["R", "L"] * 6
    assert tiny_phantom[0].patient_id == tiny_phantom[1].patient_id == "mias_p001"


def test_chest_wall_side_follows_mias(tiny_phantom):
    # In MIAS a right breast (odd number) has its chest wall on the image's right side.
    for rec in tiny_phantom:
        image = load_image(rec)
        right_brighter = image[:, 64:].mean() > image[:, :64].mean()
        assert right_brighter == (rec.laterality == "R"), rec.image_id


def test_load_records_phantom_with_root(tmp_path):
    recs = data.load_records("phantom", tmp_path / "p", n_images=2, size=64, progress=False)
    assert [r.image_id for r in recs] == ["mdb001", "mdb002"]
    assert {r.source for r in recs} == {"phantom"}


# --------------------------------------------------------------------------- invalid arguments


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(n_images=0), r"`n_images` must be an integer in \[1, 999\], received 0"),
        (dict(n_images=1000), r"`n_images` .*received 1000"),
        (dict(n_images=2.0), r"`n_images` .*received 2.0"),
        (dict(size=10), r"`size` must be at least 64 pixels for the MIAS layout, received 10"),
        (dict(size="big"), r"`size` .*received 'big'"),
        (dict(normal_fraction=1.5), r"`normal_fraction` must be in \[0, 1\], received 1.5"),
    ],
)
def test_generate_invalid_arguments(tmp_path, kwargs, pattern):
    args = dict(n_images=2, seed=0, size=64, progress=False) | kwargs
    with pytest.raises(ValueError, match=pattern):
        phantom.generate(tmp_path / "bad", **args)
    assert not (tmp_path / "bad" / "Info.txt").exists()


def test_synthesize_invalid_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="`tissue` must be 'F', 'G' or 'D', received 'X'"):
        phantom.synthesize_mammogram(rng, (64, 64), tissue="X")
    with pytest.raises(ValueError, match=r"`normal_fraction` must be in \[0, 1\], received -0.1"):
        phantom.synthesize_mammogram(rng, (64, 64), normal_fraction=-0.1)


# --------------------------------------------------------------------------- building blocks


def test_synthesize_mammogram_contents():
    ph = phantom.synthesize_mammogram(
        np.random.default_rng(1), (96, 64), tissue="D", n_lesions=2, mirror=False
    )
    assert ph.image.shape == (96, 64) and ph.image.dtype == np.float32
    assert 0.0 <= ph.image.min() and ph.image.max() <= 1.0
    assert ph.tissue == "D" and len(ph.lesions) == 2
    assert ph.breast_mask.dtype == bool and 0.1 < ph.breast_mask.mean() < 0.9
    for lesion in ph.lesions:
        row, col = (int(round(v)) for v in lesion.center)
        assert ph.breast_mask[row, col]  # lesions lie inside the breast
        assert lesion.mask[row, col] and lesion.mask.shape == (96, 64)
    # Without mirroring the chest wall is on the left.
    assert ph.breast_mask[:, :32].sum() > ph.breast_mask[:, 32:].sum()
    none = phantom.synthesize_mammogram(np.random.default_rng(1), (64, 64), n_lesions=0)
    assert none.lesions == []


def test_no_nan_for_the_smallest_lesions():
    # At 64 px this calcification (index 15 of seed 0) would scale to radius 0.57, whose ring
    # r..1.5r holds no pixel; radii are floored at 2 px so the contrast fit never sees an empty
    # ring (it used to turn the patch into NaN, written as black to the PGM).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ph = phantom.synthesize_mammogram(
            np.random.default_rng([0, 15]), (64, 64), normal_fraction=0.2, mirror=False
        )
    assert ph.lesions and ph.lesions[0].radius == 2.0
    assert np.isfinite(ph.image).sum() == 64 * 64
    assert [str(w.message) for w in caught] == []


def test_lesion_contrast_hand_computed():
    image = np.random.default_rng(0).uniform(size=(21, 21))  # beyond 1.5 r: must not matter
    rows, cols = np.mgrid[0:21, 0:21]
    d2 = (rows - 10) ** 2 + (cols - 10) ** 2
    image[d2 <= 4] = 1.0  # the 13 pixels inside r = 2
    image[(d2 > 4) & (d2 <= 9)] = 0.0  # the ring 2 < d <= 3: 16 pixels ...
    image[d2 == 5] = 0.5  # ... 8 of them at 0.5: ring mean 0.25, std 0.25
    assert phantom.lesion_contrast(image, (10, 10), 2.0) == pytest.approx(3.0, rel=1e-4)


def test_power_law_noise():
    rng = np.random.default_rng(0)
    smooth = phantom.power_law_noise(rng, (64, 48), beta=3.0)
    rough = phantom.power_law_noise(rng, (64, 48), beta=0.0)
    assert smooth.shape == (64, 48) and smooth.dtype == np.float32
    assert abs(float(smooth.mean())) < 1e-5 and float(smooth.std()) == pytest.approx(1.0, 1e-4)

    def neighbour_correlation(x):
        return np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]

    assert neighbour_correlation(smooth) > 0.9  # 1/f^3: smooth parenchyma
    assert abs(neighbour_correlation(rough)) < 0.1  # flat spectrum: white noise


# --------------------------------------------------------------------------- cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMMOSEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_follows_environment(cache):
    assert phantom.cache_dir() == cache


def test_load_phantom_records_caches(cache):
    first = phantom.load_phantom_records(n_images=4, size=64, progress=False)
    (folder,) = cache.iterdir()
    assert folder.name.startswith("phantom-4x64-seed0-")
    assert json.loads((folder / "phantom.json").read_text())["size"] == 64
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    os.utime(folder / "mdb001.pgm", ns=(1, 1))  # an mtime generation would change
    second = phantom.load_phantom_records(n_images=4, size=64, progress=False)
    assert (folder / "mdb001.pgm").stat().st_mtime_ns == 1
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != "mdb001.pgm"} == {
        k: v for k, v in stamps.items() if k != "mdb001.pgm"
    }
    assert first == second and len(first) == 4
    assert {r.source for r in first} == {"phantom"}
    assert all(Path(r.path).parent == folder for r in first)


def test_changed_argument_gives_another_folder(cache):
    small = phantom.load_phantom_records(n_images=2, size=64, progress=False)
    other_seed = phantom.load_phantom_records(n_images=2, size=64, seed=1, progress=False)
    larger = phantom.load_phantom_records(n_images=2, size=96, progress=False)
    folders = sorted(p.name for p in cache.iterdir())
    assert len(folders) == 3 and not any(name.endswith(".part") for name in folders)
    assert len({Path(r[0].path).parent for r in (small, other_seed, larger)}) == 3
    assert larger[0].shape == (96, 96) and small[0].shape == (64, 64)
    assert read_pgm(small[0].path)[0].tobytes() != read_pgm(other_seed[0].path)[0].tobytes()


def test_explicit_root_regenerates_when_arguments_change(tmp_path):
    root = tmp_path / "mine"
    assert phantom.load_phantom_records(root, n_images=2, size=64, progress=False)[0].shape == (
        64,
        64,
    )
    recs = phantom.load_phantom_records(root, n_images=4, size=96, progress=False)
    assert len(recs) == 4 and recs[0].shape == (96, 96)
    assert json.loads((root / "phantom.json").read_text())["n"] == 4
    assert not (tmp_path / "mine.part").exists()


def test_interrupted_build_is_not_reused(cache):
    recs = phantom.load_phantom_records(n_images=2, size=64, progress=False)
    folder = Path(recs[0].path).parent
    (folder / "phantom.json").unlink()  # as if the build had stopped before the stamp
    (folder / "mdb002.pgm").unlink()
    again = phantom.load_phantom_records(n_images=2, size=64, progress=False)
    assert again == recs and (folder / "mdb002.pgm").is_file()


# --------------------------------------------------------------------------- calibration


def test_radius_sampler_matches_mias_quartiles():
    # Radii are drawn at 1024 and scaled by size / 1024: at 128 px, radius * 8 is the draw.
    radii = []
    for index in range(250):
        ph = phantom.synthesize_mammogram(
            np.random.default_rng([7, index]), (128, 128), n_lesions=2
        )
        radii += [les.radius * 8 for les in ph.lesions if les.kind == "mass"]
    assert len(radii) > 250
    q1, median, q3 = np.percentile(radii, [25, 50, 75])
    assert median == pytest.approx(44, rel=0.1)
    assert q1 == pytest.approx(29, rel=0.12) and q3 == pytest.approx(64, rel=0.12)
    assert min(radii) >= 10 and max(radii) <= 197


@pytest.fixture(scope="module")
def calibration_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    phantom.generate(root, n_images=120, seed=0, size=512, progress=False)
    return read_mias(root, source="phantom")


def test_calibration_mass_radius(calibration_set):
    radii = [les.radius for r in calibration_set for les in r.lesions if les.kind == "mass"]
    assert len(radii) >= 25
    q1, median, q3 = np.percentile(radii, [25, 50, 75])
    # MIAS at 1024: median 44, quartiles 29 and 64; at 512 half of that.
    assert 0.8 <= median / 22 <= 1.25
    assert 0.7 <= q1 / 14.5 <= 1.35 and 0.7 <= q3 / 32 <= 1.35


def test_calibration_contrast_area_and_normals(calibration_set):
    contrasts, areas = [], []
    for rec in calibration_set:
        image = load_image(rec)
        areas.append(float((image > 0.06).mean()))
        contrasts += [
            phantom.lesion_contrast(image, les.center, les.radius)
            for les in rec.lesions
            if les.kind == "mass"
        ]
    # MIAS masses: contrast median 1.0 (quartiles 0.75, 1.56); breast median ~30 % of the image.
    assert 0.8 <= np.median(contrasts) <= 1.25
    assert np.percentile(contrasts, 25) > 0.4  # most masses are brighter than their ring
    assert 0.22 <= np.median(areas) <= 0.4
    assert 0.05 < min(areas) and max(areas) < 0.95
    normal_share = np.mean([not r.lesions for r in calibration_set])
    assert normal_share == pytest.approx(0.6, abs=0.12)


def test_normal_fraction_is_adjustable(tmp_path):
    # 128 px, not 64: see test_no_nan_for_the_smallest_lesions.
    phantom.generate(tmp_path, n_images=100, seed=0, size=128, normal_fraction=0.2, progress=False)
    share = np.mean([not r.lesions for r in read_mias(tmp_path)])
    assert share == pytest.approx(0.2, abs=0.1)


def test_generate_without_size_writes_mias_sized_images(tmp_path):
    phantom.generate(tmp_path, n_images=1, seed=0, progress=False)
    assert read_pgm_shape(tmp_path / "mdb001.pgm") == (1024, 1024)
