"""make_dataset: records → tf.data batches of (image, mask)."""

import numpy as np
import pytest
import tensorflow as tf

from mammoseg.data.augment import RotationAugment
from mammoseg.data.errors import MammosegDataError
from mammoseg.data.pipeline import dataset_from_arrays, decode_records, make_dataset
from mammoseg.data.records import Record, load_image, load_mask


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_batches_shapes_dtypes_and_values(tiny_phantom):
    ds = make_dataset(tiny_phantom, 64, batch_size=5, shuffle=False, progress=False)
    out = batches(ds)
    assert [x.shape for x, _ in out] == [(5, 64, 64, 1), (5, 64, 64, 1), (2, 64, 64, 1)]
    for x, y in out:
        assert x.dtype == np.float32 and y.dtype == np.float32 and y.shape == x.shape
        assert set(np.unique(y)) <= {0.0, 1.0}
        assert 0.0 <= x.min() and x.max() <= 1.0
    images = np.concatenate([x for x, _ in out])[..., 0]
    masks = np.concatenate([y for _, y in out])[..., 0]
    for k, rec in enumerate(tiny_phantom):
        np.testing.assert_array_equal(masks[k], load_mask(rec, 64))
        np.testing.assert_allclose(images[k], load_image(rec, 64), atol=1e-6)
    assert masks.sum() > 0


def test_kinds_reach_the_masks(tiny_phantom):
    masses = batches(make_dataset(tiny_phantom, 64, 12, shuffle=False, progress=False))[0][1]
    every = batches(make_dataset(tiny_phantom, 64, 12, shuffle=False, kinds=None, progress=False))
    every = every[0][1]
    for k, rec in enumerate(tiny_phantom):
        np.testing.assert_array_equal(every[k, ..., 0], load_mask(rec, 64, kinds=None))
    # The phantom has calcifications (mdb003, mdb007, mdb012): more pixels with every kind.
    assert every.sum() > masses.sum()


def test_non_square_size(tiny_phantom):
    x, y = batches(make_dataset(tiny_phantom[:2], (64, 32), 2, shuffle=False, progress=False))[0]
    assert x.shape == y.shape == (2, 64, 32, 1)
    np.testing.assert_array_equal(y[1, ..., 0], load_mask(tiny_phantom[1], (64, 32)))


def test_shuffle_is_deterministic_per_seed(tiny_phantom):
    def first_epoch(seed):
        ds = make_dataset(tiny_phantom, 64, 12, shuffle=True, seed=seed, progress=False)
        return next(iter(ds))[0].numpy()

    reference = make_dataset(tiny_phantom, 64, 12, shuffle=False, progress=False)
    unshuffled = next(iter(reference))[0].numpy()
    a, b, c = first_epoch(1), first_epoch(1), first_epoch(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, unshuffled)
    # A permutation of the same images: every image is there once.
    order = [int(np.argmin(np.abs(unshuffled - img).sum(axis=(1, 2, 3)))) for img in a]
    assert sorted(order) == list(range(12))


def test_reshuffled_every_epoch(tiny_phantom):
    ds = make_dataset(tiny_phantom, 64, 12, shuffle=True, seed=0, progress=False)
    first, second = (next(iter(ds))[0].numpy() for _ in range(2))
    assert not np.array_equal(first, second)
    np.testing.assert_allclose(
        np.sort(first.sum(axis=(1, 2, 3))), np.sort(second.sum(axis=(1, 2, 3)))
    )


def test_repeat(tiny_phantom):
    ds = make_dataset(tiny_phantom, 64, 5, shuffle=True, repeat=True, progress=False)
    sizes = [x.shape[0] for x, _ in ds.take(7)]
    assert sizes == [5] * 7  # batches run across epoch boundaries, never short
    finite = make_dataset(tiny_phantom, 64, 5, repeat=False, progress=False)
    assert sum(1 for _ in finite) == 3


def test_drop_remainder(tiny_phantom):
    ds = make_dataset(tiny_phantom, 64, 5, drop_remainder=True, progress=False)
    assert [x.shape[0] for x, _ in ds] == [5, 5]
    # What drop_remainder is for: a static batch size, which some distribution strategies need.
    assert ds.element_spec[0].shape == (5, 64, 64, 1)
    assert ds.element_spec[1].shape == (5, 64, 64, 1)


def test_augment_is_applied(tiny_phantom):
    plain = batches(make_dataset(tiny_phantom, 64, 12, shuffle=False, progress=False))[0]
    aug = RotationAugment(rotation_range=360, fill_mode="constant")
    augmented = batches(
        make_dataset(tiny_phantom, 64, 12, shuffle=False, augment=aug, seed=4, progress=False)
    )[0]
    again = batches(
        make_dataset(tiny_phantom, 64, 12, shuffle=False, augment=aug, seed=4, progress=False)
    )[0]
    np.testing.assert_array_equal(augmented[0], again[0])  # deterministic per seed
    x, y = augmented
    assert x.shape == (12, 64, 64, 1) and set(np.unique(y)) <= {0.0, 1.0}
    changed = [not np.array_equal(x[k], plain[0][k]) for k in range(12)]
    assert sum(changed) >= 11
    # Rotations move the lesions but keep (roughly) their area and the mask under the image.
    for k in range(12):
        area = plain[1][k].sum()
        assert abs(y[k].sum() - area) <= max(0.15 * area, 6)


def test_augmentation_differs_between_epochs(tiny_phantom):
    # Keras' fit iterates the dataset afresh every epoch; each epoch must draw new rotations,
    # as ImageDataGenerator did, also without shuffling.
    aug = RotationAugment(rotation_range=360)
    ds = make_dataset(tiny_phantom, 64, 12, shuffle=False, augment=aug, progress=False)
    first, second = (next(iter(ds))[0].numpy() for _ in range(2))
    assert not np.array_equal(first, second)


def test_arrays_skip_decoding(tiny_phantom):
    images, masks = decode_records(tiny_phantom[:4], 64, progress=False)
    assert images.shape == (4, 64, 64) and images.dtype == np.float32
    assert masks.shape == (4, 64, 64) and masks.dtype == np.uint8
    ds = dataset_from_arrays(images, masks, 4, shuffle=False)
    x, y = next(iter(ds))
    np.testing.assert_array_equal(x.numpy()[..., 0], images)
    np.testing.assert_array_equal(y.numpy()[..., 0], masks.astype(np.float32))


def test_usable_by_keras_fit(tiny_phantom):
    import keras

    inputs = keras.Input((64, 64, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    model.compile("sgd", "binary_crossentropy")
    ds = make_dataset(tiny_phantom[:4], 64, 2, progress=False)
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


# --------------------------------------------------------------------------- invalid arguments


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, None])
def test_invalid_batch_size(tiny_phantom, batch_size):
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer, received"):
        make_dataset(tiny_phantom, 64, batch_size=batch_size, progress=False)


def test_empty_records():
    with pytest.raises(MammosegDataError, match="empty dataset"):
        make_dataset([], 64, batch_size=2, progress=False)
    empty = np.zeros((0, 8, 8), np.float32)
    with pytest.raises(MammosegDataError, match="empty dataset: no images"):
        dataset_from_arrays(empty, empty.astype(np.uint8), 2)
    with pytest.raises(
        ValueError, match=r"both be \(N, H, W\), received \(2, 8, 8\) and \(3, 8, 8\)"
    ):
        dataset_from_arrays(np.zeros((2, 8, 8)), np.zeros((3, 8, 8)), 2)


def test_size_required_with_records(tiny_phantom):
    with pytest.raises(ValueError, match="`size` is required when building a dataset from records"):
        make_dataset(tiny_phantom, None, batch_size=2, progress=False)


@pytest.mark.parametrize(
    "size, error", [(0, ValueError), ("64", TypeError), ((64, 64, 1), TypeError)]
)
def test_invalid_size(tiny_phantom, size, error):
    with pytest.raises(error, match="`size`"):
        make_dataset(tiny_phantom, size, batch_size=2, progress=False)


def test_invalid_augment(tiny_phantom):
    with pytest.raises(TypeError, match="`augment` must be a RotationAugment, a Keras layer or"):
        make_dataset(tiny_phantom, 64, 2, augment="rotate", progress=False)


def _pair_with_a_bright_pixel(n: int = 2):
    images = np.zeros((n, 8, 8), np.float32)
    masks = np.zeros((n, 8, 8), np.uint8)
    images[:, 2, 1] = 1.0
    masks[:, 2, 1] = 1
    return images, masks


def test_a_keras_layer_augments_image_and_mask_together():
    import keras

    images, masks = _pair_with_a_bright_pixel(16)
    flip = keras.layers.RandomFlip("horizontal", seed=0)  # each image flipped or not at random
    x, y = next(iter(dataset_from_arrays(images, masks, 16, shuffle=False, augment=flip)))
    x, y = x.numpy()[..., 0], y.numpy()[..., 0]
    flipped = [bool(image[2, 6] == 1.0) for image in x]
    assert 0 < sum(flipped) < 16  # the layer did act, and at random
    for image, mask, was_flipped in zip(x, y, flipped):
        assert image[2, 6 if was_flipped else 1] == 1.0 and image.sum() == 1.0
        np.testing.assert_array_equal(mask, image)  # the mask followed its image


def test_a_callable_augments_image_and_mask():
    images, masks = _pair_with_a_bright_pixel()

    def shift_down(image, mask):
        return tf.roll(image, 3, axis=1), tf.roll(mask, 3, axis=1)

    x, y = next(iter(dataset_from_arrays(images, masks, 2, shuffle=False, augment=shift_down)))
    assert x.numpy()[0, 5, 1, 0] == 1.0 and x.numpy()[0, 2, 1, 0] == 0.0
    assert y.numpy()[1, 5, 1, 0] == 1.0 and y.numpy().sum() == 2


def test_unreadable_image_is_reported(tmp_path):
    rec = Record("mdb001", "p", "mias", str(tmp_path / "mdb001.pgm"), shape=(64, 64))
    with pytest.raises(MammosegDataError, match=r"mdb001\.pgm: cannot read image"):
        make_dataset([rec], 32, 1, progress=False)


def test_dataset_is_a_tf_dataset(tiny_phantom):
    ds = make_dataset(tiny_phantom, 64, 4, progress=False)
    assert isinstance(ds, tf.data.Dataset)
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[1].dtype == tf.float32
