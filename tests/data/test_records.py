"""Record, Lesion and their conversion to arrays; the `mammoseg.data` entry points."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mammoseg.data as data
from mammoseg.data.errors import MammosegDataError, MammosegDataWarning
from mammoseg.data.pgm import write_pgm
from mammoseg.data.records import (
    Lesion,
    Record,
    draw_circle,
    image_shape,
    load_image,
    load_instance_masks,
    load_mask,
    read_pixels,
)

# Lattice points within distance r of a lattice point (Gauss's circle problem): 1, 5, 13, 29, ...
GAUSS = {0: 1, 1: 5, 2: 13, 3: 29, 4: 49, 5: 81, 10: 317}


def mass(center, radius, pathology="benign"):
    return Lesion("mass", pathology, center=center, radius=radius)


def record(*lesions, shape=(40, 40), path="nowhere.pgm"):
    # With `shape` given, masks are drawn without opening `path`.
    return Record("img", "patient", "test", path, lesions=tuple(lesions), shape=shape)


# --------------------------------------------------------------------------- Lesion, Record


def test_lesion_has_region():
    assert mass((5.0, 5.0), 2.0).has_region
    assert Lesion("mass", mask_path="roi.dcm").has_region
    assert not Lesion("mass", "benign").has_region
    assert not Lesion("mass", center=(5.0, 5.0)).has_region  # a centre without a radius


def test_lesion_zero_radius_is_allowed():
    assert Lesion("calcification", center=(1.0, 1.0), radius=0.0).radius == 0.0


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(kind="tumour"), r"`kind` must be one of .*'mass'.*received 'tumour'"),
        (dict(kind="mass", pathology="unknown"), r"`pathology` must be one of .*'unknown'"),
        (dict(kind="mass", pathology="Benign"), r"`pathology` .*received 'Benign'"),
        (dict(kind="mass", radius=-1.0), r"`radius` must be >= 0, received -1.0"),
    ],
)
def test_lesion_validation(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Lesion(**kwargs)


def test_record_has_lesion_and_radii():
    rec = record(
        mass((10.0, 10.0), 5.0),
        Lesion("calcification", "malignant", center=(30.0, 30.0), radius=3.0),
        Lesion("mass", "malignant"),  # no coordinates: kept, never drawn
    )
    assert rec.has_lesion()
    assert rec.lesion_radii() == [5.0]
    assert rec.lesion_radii(None) == [5.0, 3.0]
    assert rec.lesion_radii("calcification") == [3.0]
    assert rec.has_lesion(["asymmetry"]) is False
    only_undrawable = record(Lesion("mass", "benign"))
    assert not only_undrawable.has_lesion() and not only_undrawable.has_lesion(None)
    with pytest.raises(ValueError, match=r"`kinds` must be drawn from .*\['masses'\]"):
        rec.has_lesion(["masses"])


# --------------------------------------------------------------------------- draw_circle


def test_draw_circle_known_pixels():
    disc = draw_circle((21, 21), (10.0, 10.0), 5.0)
    assert disc.dtype == bool and disc.shape == (21, 21)
    assert disc[10, 10]
    assert disc[10, 15] and disc[5, 10] and disc[13, 14]  # distance 5, 5 and 5 exactly
    assert not disc[10, 16] and not disc[4, 10] and not disc[14, 14]  # 6, 6 and sqrt(32)
    assert disc.sum() == GAUSS[5]


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4, 10])
def test_draw_circle_counts_lattice_points(radius):
    disc = draw_circle((31, 31), (15.0, 15.0), float(radius))
    assert disc.sum() == GAUSS[radius]


def test_draw_circle_tiny_radius_downscaled_keeps_one_pixel():
    disc = draw_circle((64, 64), (500.3, 700.7), 0.1, source_shape=(1024, 1024))
    assert disc.sum() == 1
    # Target pixel i covers source rows [16 i - 0.5, 16 i + 15.5): row 500.3 -> 31, col 700.7 -> 43.
    assert disc[31, 43]


def test_draw_circle_non_square_source():
    # Source 100 x 200 drawn on 50 x 50: rows shrink by 2, columns by 4, so the circle of
    # radius 20 becomes an ellipse 10 rows by 5 columns in half-axes.
    disc = draw_circle((50, 50), (50.0, 100.0), 20.0, source_shape=(100, 200))
    rows, cols = np.nonzero(disc)
    # Target row i is source row 2 i + 0.5: |2 i + 0.5 - 50| <= 20  ->  i in 15..34.
    assert (rows.min(), rows.max()) == (15, 34)
    # Target col j is source col 4 j + 1.5: |4 j + 1.5 - 100| <= 20  ->  j in 20..29.
    assert (cols.min(), cols.max()) == (20, 29)


def test_draw_circle_centre_pixel_set_even_between_samples():
    # Radius 3 at 1024 drawn at 64: no target pixel centre is within 3 px, but the pixel
    # holding the centre is set.
    disc = draw_circle((64, 64), (100.0, 200.0), 3.0, source_shape=(1024, 1024))
    assert disc.sum() == 1 and disc[6, 12]


# --------------------------------------------------------------------------- load_mask


def test_load_mask_union_of_overlapping_circles():
    rec = record(mass((20.0, 20.0), 5.0), mass((20.0, 26.0), 5.0))
    mask = load_mask(rec)
    assert mask.dtype == np.uint8 and mask.shape == (40, 40)
    # Each disc holds 81 lattice points; the lens where they overlap holds, for column offsets
    # 1..5 from the first centre, 1 + 7 + 9 + 7 + 1 = 25 points: 81 + 81 - 25 = 137.
    assert mask.sum() == 137
    assert mask[20, 20] == 1 and mask[20, 31] == 1 and mask[20, 32] == 0 and mask[20, 14] == 0


def test_load_mask_kinds_filter():
    calc = Lesion("calcification", "benign", center=(30.0, 10.0), radius=2.0)
    rec = record(mass((10.0, 10.0), 3.0), calc)
    assert load_mask(rec).sum() == GAUSS[3]
    assert load_mask(rec)[30, 10] == 0  # the calcification is not in a mass mask
    assert load_mask(rec, kinds=None).sum() == GAUSS[3] + GAUSS[2]
    only_calc = load_mask(rec, kinds="calcification")
    assert only_calc.sum() == GAUSS[2] and only_calc[30, 10] == 1
    assert load_mask(rec, kinds=("asymmetry",)).sum() == 0
    with pytest.raises(ValueError, match="`kinds`"):
        load_mask(rec, kinds=["tumour"])


def test_lesion_without_coordinates_is_kept_but_not_drawn():
    rec = record(Lesion("mass", "malignant"), mass((10.0, 10.0), 2.0))
    assert len(rec.lesions) == 2
    assert load_mask(rec).sum() == GAUSS[2]
    assert load_instance_masks(rec).shape == (40, 40, 1)
    empty = record(Lesion("mass", "malignant"))
    assert load_mask(empty).sum() == 0 and load_mask(empty).shape == (40, 40)


def test_load_mask_resized_uses_image_coordinates():
    rec = record(mass((20.0, 20.0), 10.0), shape=(40, 40))
    small = load_mask(rec, 20)
    assert small.shape == (20, 20)
    # Target pixel i has its centre at source 2 i + 0.5; |2 i + 0.5 - 20| <= 10 -> i in 5..14.
    rows = np.nonzero(small.any(axis=1))[0]
    assert (rows.min(), rows.max()) == (5, 14)
    np.testing.assert_array_equal(small, draw_circle((20, 20), (20.0, 20.0), 10.0, (40, 40)))
    assert load_mask(rec, (10, 20)).shape == (10, 20)


def test_load_mask_reads_shape_from_pgm_header(tmp_path):
    write_pgm(tmp_path / "a.pgm", np.zeros((24, 32), np.uint8))
    rec = Record("a", "p", "test", str(tmp_path / "a.pgm"), lesions=(mass((5.0, 31.0), 1.0),))
    assert image_shape(rec) == (24, 32)
    mask = load_mask(rec)
    assert mask.shape == (24, 32) and mask.sum() == GAUSS[1] - 1  # (5, 32) is off the image
    assert mask[5, 31] == 1 and mask[5, 30] == 1 and mask[4, 31] == 1


def test_load_instance_masks():
    rec = record(mass((20.0, 20.0), 5.0), mass((20.0, 26.0), 5.0), mass((35.0, 35.0), 1.0))
    masks = load_instance_masks(rec)
    assert masks.dtype == bool and masks.shape == (40, 40, 3)
    assert masks.sum(axis=(0, 1)).tolist() == [81, 81, 5]
    np.testing.assert_array_equal(masks.any(axis=-1), load_mask(rec).astype(bool))
    assert load_instance_masks(rec, (20, 10)).shape == (20, 10, 3)


def test_load_instance_masks_without_lesions():
    masks = load_instance_masks(record(Lesion("mass")), 16)
    assert masks.shape == (16, 16, 0) and masks.dtype == bool
    assert load_instance_masks(record()).shape == (40, 40, 0)


# --------------------------------------------------------------------------- load_image


@pytest.fixture
def gradient_pgm(tmp_path):
    """A 64 x 96 (height x width) PGM whose pixel value is 2 * column + row // 32."""
    rows, cols = np.mgrid[0:64, 0:96]
    pixels = (2 * cols + rows // 32).astype(np.uint8)
    write_pgm(tmp_path / "g.pgm", pixels)
    return tmp_path / "g.pgm", pixels


def test_load_image_own_size(gradient_pgm):
    path, pixels = gradient_pgm
    image = load_image(Record("g", "p", "test", str(path)))
    assert image.dtype == np.float32 and image.shape == (64, 96)
    np.testing.assert_allclose(image, pixels / 255.0, atol=1e-7)


def test_load_image_non_square_block_average(gradient_pgm):
    path, pixels = gradient_pgm
    image = load_image(Record("g", "p", "test", str(path)), (32, 48))
    assert image.dtype == np.float32 and image.shape == (32, 48)
    # Block (i, j) holds columns 2 j, 2 j + 1 -> mean 4 j + 1, plus (2 i) // 32.
    assert image[0, 0] == pytest.approx(1 / 255) and image[31, 47] == pytest.approx(190 / 255)
    assert image[16, 10] == pytest.approx(42 / 255)


def test_load_image_non_integer_factor(gradient_pgm):
    path, _ = gradient_pgm
    image = load_image(Record("g", "p", "test", str(path)), (40, 30))
    assert image.dtype == np.float32 and image.shape == (40, 30)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert np.all(np.diff(image[0]) > 0)  # still increasing left to right


def test_load_image_16_bit(tmp_path):
    write_pgm(tmp_path / "w.pgm", np.array([[0, 2048], [4095, 1024]], np.uint16), maxval=4095)
    image = load_image(Record("w", "p", "test", str(tmp_path / "w.pgm")))
    np.testing.assert_allclose(image, [[0.0, 2048 / 4095], [1.0, 1024 / 4095]], rtol=1e-6)


def test_load_image_missing_file(tmp_path):
    with pytest.raises(MammosegDataError, match=r"nothing\.pgm: cannot read image"):
        load_image(Record("x", "p", "test", str(tmp_path / "nothing.pgm")))


def test_read_pixels_png(tmp_path):
    Image.fromarray(np.array([[0, 51], [255, 102]], np.uint8)).save(tmp_path / "a.png")
    np.testing.assert_allclose(read_pixels(tmp_path / "a.png"), [[0, 0.2], [1, 0.4]], atol=1e-7)
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "b.png")
    np.testing.assert_allclose(read_pixels(tmp_path / "b.png"), [[0.0, 1.0]])


def test_read_pixels_errors(tmp_path):
    with pytest.raises(MammosegDataError, match=r"gone\.png: image file not found"):
        read_pixels(tmp_path / "gone.png")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(MammosegDataError, match=r"junk\.png: cannot decode image"):
        read_pixels(tmp_path / "junk.png")


# --------------------------------------------------------------------------- mammoseg.data


def test_load_records_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"unknown dataset 'miass'.*did you mean 'mias'\?") as info:
        data.load_records("miass")
    assert "['cbis-ddsm', 'mias', 'phantom']" in str(info.value)
    with pytest.raises(ValueError, match="unknown dataset 'inbreast'") as info:
        data.load_records("inbreast")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("name", ["mias", "cbis-ddsm"])
def test_load_records_needs_root(name):
    with pytest.raises(ValueError, match=rf"load_records\('{name}'\) needs `root`"):
        data.load_records(name)


def test_lazy_attributes():
    import importlib

    split = importlib.import_module("mammoseg.data.split")
    augment = importlib.import_module("mammoseg.data.augment")
    pipeline = importlib.import_module("mammoseg.data.pipeline")
    over = importlib.import_module("mammoseg.data.oversampling")
    assert data.split_by_patient is split.split_by_patient
    assert data.authors_large_tumour_subset is over.authors_large_tumour_subset
    assert data.RotationAugment is augment.RotationAugment
    assert data.make_dataset is pipeline.make_dataset
    with pytest.raises(AttributeError, match="no attribute 'make_datasets'"):
        data.make_datasets  # noqa: B018


def test_oversample_attribute_is_the_function_after_its_module_is_imported():
    # A lazy name must not be a submodule's name too: importing the submodule (which the first
    # lazy access itself does) would bind the module to that name.
    import mammoseg.data.oversampling as module

    assert data.oversample is module.oversample
    assert data.oversample is module.oversample  # and it stays so on a second access


def test_load_mask_refuses_an_all_zero_mask_file(tmp_path):
    # A record built by hand (or by an older cache) whose mask file marks nothing: drawing it
    # would label a lesion image as lesion-free without a word.
    blank = tmp_path / "blank.pgm"
    write_pgm(blank, np.zeros((8, 8), np.uint8))
    lesion = Lesion("mass", "benign", mask_path=str(blank))
    record = Record("x", "p", "cbis-ddsm", str(blank), lesions=(lesion,), shape=(8, 8))
    with pytest.raises(MammosegDataError) as info:
        load_mask(record)
    assert str(info.value) == f"{blank}: the ROI mask is all zero: it marks no lesion pixel"
    write_pgm(blank, np.pad(np.full((2, 2), 255, np.uint8), 3))
    assert load_mask(record).sum() == 4


def test_load_records_passes_errors_on_to_the_reader(tmp_path):
    from mammoseg.data.phantom_cbis import write_cbis_phantom

    root = write_cbis_phantom(tmp_path / "cbis", 2, seed=4, size=96, progress=False)
    first, second = data.load_records("cbis-ddsm", root)
    Path(first.path).write_bytes(b"not a DICOM")
    with pytest.raises(MammosegDataError, match="not a DICOM file"):
        data.load_records("cbis-ddsm", root)
    with pytest.warns(MammosegDataWarning, match=f"skipped image {first.image_id}"):
        assert data.load_records("cbis-ddsm", root, errors="skip") == [second]
    with pytest.raises(ValueError, match=r"`errors` must be one of \('raise', 'skip'\)"):
        data.load_records("cbis-ddsm", root, errors="ignore")


def test_a_tiny_lesion_on_the_last_row_or_column_keeps_its_pixel():
    # The centre pixel is clipped into the image: a centre half a pixel past the last row or
    # column still marks that row or column (mutation survivor, issue #20).
    from mammoseg.data.records import draw_circle

    bottom = draw_circle((16, 16), (15.9, 4.0), 0.1)
    right = draw_circle((16, 16), (4.0, 15.9), 0.1)
    assert bottom.sum() == 1 and bottom[15, 4]
    assert right.sum() == 1 and right[4, 15]
