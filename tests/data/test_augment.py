"""RotationAugment: Keras 2 ImageDataGenerator-style rotations, identical for image and mask."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mammoseg.data.augment import RotationAugment


def batch(array, n=1):
    """(H, W) → (n, H, W, 1) float32."""
    return np.repeat(np.asarray(array, np.float32)[None, ..., None], n, axis=0)


def run(aug, images, masks, seed=(1, 2)):
    out_images, out_masks = aug.apply(images, masks, tf.constant(seed, tf.int64))
    return out_images.numpy(), out_masks.numpy()


@pytest.fixture
def fixed_angle(monkeypatch):
    """Make every rotation in `apply` use a chosen angle instead of a random one."""

    def use(angle):
        original = RotationAugment._rotation_matrices

        def matrices(self, angles, height, width):
            return original(self, tf.fill(tf.shape(angles), np.float32(angle)), height, width)

        monkeypatch.setattr(RotationAugment, "_rotation_matrices", matrices)

    return use


# --------------------------------------------------------------------------- the transform


def test_rotation_matrix_hand_computed():
    aug = RotationAugment(rotation_range=90)
    matrix = aug._rotation_matrices(tf.constant([np.pi / 2, 0.0]), 5, 5).numpy()
    # Output (x, y) samples input (cos x - sin y + a2, sin x + cos y + b2) about centre (2, 2).
    np.testing.assert_allclose(matrix[0], [0, -1, 4, 1, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(matrix[1], [1, 0, 0, 0, 1, 0, 0, 0], atol=1e-6)
    # The top-middle output pixel (x=2, y=0) reads the right-middle input pixel (x=4, y=2).
    a = matrix[0]
    assert (a[0] * 2 + a[1] * 0 + a[2], a[3] * 2 + a[4] * 0 + a[5]) == pytest.approx((4, 2))


def test_quarter_turn_moves_known_pixels(fixed_angle):
    fixed_angle(np.pi / 2)
    image = np.zeros((9, 9), np.float32)
    image[4, 8] = 1.0  # right middle
    image[0, 0] = 0.5  # top left
    mask = (image > 0).astype(np.float32)
    out_image, out_mask = run(RotationAugment(rotation_range=90), batch(image), batch(mask))
    # +90 degrees turns the image counter-clockwise as displayed, like np.rot90.
    np.testing.assert_allclose(out_image[0, ..., 0], np.rot90(image), atol=1e-5)
    np.testing.assert_array_equal(out_mask[0, ..., 0], np.rot90(mask))
    assert out_image[0, 0, 4, 0] == pytest.approx(1.0, abs=1e-5)  # now top middle
    assert out_image[0, 8, 0, 0] == pytest.approx(0.5, abs=1e-5)  # top left -> bottom left


def test_rotation_range_zero_is_identity():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 16, 16, 1)).astype(np.float32)
    masks = (images > 0.5).astype(np.float32)
    out_images, out_masks = run(RotationAugment(), images, masks)
    np.testing.assert_array_equal(out_images, images)
    np.testing.assert_array_equal(out_masks, masks)


def test_angles_stay_within_range():
    # A 3 x 3 blob 20 px right of the centre of a 65 x 65 image: after a rotation of at most
    # 30 degrees its centroid is still 20 px from the centre, at most 30 degrees off.
    image = np.zeros((65, 65), np.float32)
    image[31:34, 51:54] = 1.0
    out_images, out_masks = run(
        RotationAugment(rotation_range=30), batch(image, 32), batch(image, 32), seed=(5, 6)
    )
    rows, cols = np.mgrid[0:65, 0:65]
    angles = []
    for out_image, out_mask in zip(out_images[..., 0], out_masks[..., 0]):
        total = out_image.sum()
        assert total == pytest.approx(9.0, rel=0.02)  # nothing lost off the edge
        r, c = (rows * out_image).sum() / total - 32, (cols * out_image).sum() / total - 32
        assert np.hypot(r, c) == pytest.approx(20.0, abs=0.5)
        angles.append(np.degrees(np.arctan2(-r, c)))
        mr = (rows * out_mask).sum() / out_mask.sum() - 32
        mc = (cols * out_mask).sum() / out_mask.sum() - 32
        assert np.hypot(mr - r, mc - c) < 1.0  # the mask went where the image went
    assert max(abs(a) for a in angles) <= 30.5
    assert np.ptp(angles) > 20  # random, spread over the range
    assert sum(a > 0 for a in angles) >= 6 and sum(a < 0 for a in angles) >= 6


def test_full_range_reaches_every_quadrant():
    image = np.zeros((65, 65), np.float32)
    image[31:34, 51:54] = 1.0
    out_images, _ = run(RotationAugment(rotation_range=360), batch(image, 64), batch(image, 64))
    rows, cols = np.mgrid[0:65, 0:65]
    quadrants = set()
    for out in out_images[..., 0]:
        r = (rows * out).sum() / out.sum() - 32
        c = (cols * out).sum() / out.sum() - 32
        quadrants.add((r > 0, c > 0))
    assert len(quadrants) == 4


def test_image_and_mask_receive_the_same_transform():
    square = np.zeros((64, 64), np.float32)
    square[8:28, 30:50] = 1.0  # off-centre, so any rotation moves it
    images = batch(square, 16)
    out_images, out_masks = run(
        RotationAugment(rotation_range=360, horizontal_flip=True, vertical_flip=True),
        images,
        images.copy(),
        seed=(3, 4),
    )
    moved = 0
    for out_image, out_mask in zip(out_images[..., 0] > 0.5, out_masks[..., 0] > 0.5):
        union = (out_image | out_mask).sum()
        assert (out_image & out_mask).sum() / union >= 0.95
        original = square > 0.5
        moved += (out_mask & original).sum() / (out_mask | original).sum() < 0.5
    assert moved >= 8


def test_masks_stay_binary():
    rng = np.random.default_rng(1)
    masks = (rng.uniform(size=(8, 48, 48, 1)) < 0.4).astype(np.float32)
    aug = RotationAugment(rotation_range=360, fill_mode="reflect", cval=0.7, horizontal_flip=True)
    _, out_masks = run(aug, masks.copy(), masks)
    assert set(np.unique(out_masks)) <= {0.0, 1.0}
    assert 0.3 < out_masks.mean() < 0.5


def test_constant_fill_at_45_degrees(fixed_angle):
    fixed_angle(np.pi / 4)
    ones = batch(np.ones((64, 64)), 2)
    aug = RotationAugment(rotation_range=45, fill_mode="constant", cval=0.25)
    out_images, out_masks = run(aug, ones, ones.copy())
    for out_image, out_mask in zip(out_images[..., 0], out_masks[..., 0]):
        for r, c in ((0, 0), (0, 63), (63, 0), (63, 63)):
            assert out_image[r, c] == pytest.approx(0.25)  # image corners: cval
            assert out_mask[r, c] == 0.0  # masks are always filled with 0
        assert out_image[32, 32] == pytest.approx(1.0) and out_mask[32, 32] == 1.0
        # Inside the inscribed circle nothing is filled.
        rows, cols = np.mgrid[0:64, 0:64]
        inner = np.hypot(rows - 31.5, cols - 31.5) < 30
        np.testing.assert_allclose(out_image[inner], 1.0, atol=1e-6)
        # A square turned 45 degrees leaves 4 corner triangles with legs (2 - sqrt 2) times the
        # half side: (12 - 8 sqrt 2) / 4 = 17.2 % of the image is filled.
        assert (out_mask == 0).mean() == pytest.approx((12 - 8 * np.sqrt(2)) / 4, abs=0.01)


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap"])
def test_other_fill_modes_do_not_use_cval(fixed_angle, fill_mode):
    fixed_angle(np.pi / 4)
    ones = batch(np.ones((32, 32)), 1)
    out_images, _ = run(RotationAugment(45, fill_mode=fill_mode, cval=0.25), ones, ones.copy())
    np.testing.assert_allclose(out_images, 1.0, atol=1e-6)


def test_flips():
    rng = np.random.default_rng(2)
    image = rng.uniform(size=(8, 12)).astype(np.float32)
    mask = (image > 0.5).astype(np.float32)
    for flip, reference in (("horizontal_flip", np.fliplr), ("vertical_flip", np.flipud)):
        aug = RotationAugment(**{flip: True})
        out_images, out_masks = run(aug, batch(image, 32), batch(mask, 32), seed=(7, 8))
        flipped = 0
        for out_image, out_mask in zip(out_images[..., 0], out_masks[..., 0]):
            if np.array_equal(out_image, image):
                np.testing.assert_array_equal(out_mask, mask)
            else:
                np.testing.assert_array_equal(out_image, reference(image))
                np.testing.assert_array_equal(out_mask, reference(mask))
                flipped += 1
        assert 6 <= flipped <= 26, flip  # probability 0.5 each


def test_same_seed_same_output_different_seed_different():
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(4, 32, 32, 1)).astype(np.float32)
    masks = (images > 0.5).astype(np.float32)
    aug = RotationAugment(rotation_range=360, horizontal_flip=True)
    first = run(aug, images, masks, seed=(11, 12))
    again = run(aug, images, masks, seed=(11, 12))
    other = run(aug, images, masks, seed=(11, 13))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    for k in range(4):
        assert not np.array_equal(first[0][k], other[0][k])


def test_apply_inside_tf_function():
    aug = RotationAugment(rotation_range=360)
    images = np.ones((3, 16, 16, 1), np.float32)
    eager = run(aug, images, images.copy(), seed=(1, 1))
    graph = tf.function(aug.apply)(images, images.copy(), tf.constant([1, 1], tf.int64))
    np.testing.assert_allclose(graph[0].numpy(), eager[0], atol=1e-6)
    np.testing.assert_array_equal(graph[1].numpy(), eager[1])


# --------------------------------------------------------------------------- keras RandomRotation
# Issue #18: RotationAugment against keras.layers.RandomRotation at the same angle. The layer's
# factor is a fraction of a full turn, so factor=(d / 360, d / 360) rotates by exactly d degrees.


def keras_rotation(images, masks, degrees, fill_mode, cval=0.0):
    layer = keras.layers.RandomRotation(
        factor=(degrees / 360, degrees / 360),
        fill_mode=fill_mode,
        fill_value=cval,
        interpolation="bilinear",
        dtype="float32",
    )
    out = layer({"images": images, "segmentation_masks": masks}, training=True)
    return (
        keras.ops.convert_to_numpy(out["images"]),
        keras.ops.convert_to_numpy(out["segmentation_masks"]),
    )


def bright_pixel_case():
    """33 x 33 dim noise, one bright pixel at (row 16, col 30) and a 5 x 5 mask around it."""
    image = np.random.default_rng(4).uniform(0.0, 0.1, size=(33, 33)).astype(np.float32)
    image[16, 30] = 5.0
    mask = np.zeros((33, 33), np.float32)
    mask[14:19, 28:33] = 1.0
    return batch(image, 2), batch(mask, 2)


@pytest.mark.parametrize("fill_mode", ["constant", "nearest", "reflect", "wrap"])
@pytest.mark.parametrize("degrees", [90.0, 30.0, -17.3])
def test_equals_keras_random_rotation_at_a_fixed_angle(fixed_angle, fill_mode, degrees):
    images, masks = bright_pixel_case()
    fixed_angle(np.deg2rad(degrees))
    ours = run(RotationAugment(abs(degrees), fill_mode=fill_mode), images, masks)
    theirs = keras_rotation(images, masks, degrees, fill_mode)
    # Same matrix, same op: equal up to the float32 rounding of degrees -> radians (measured:
    # 0 at 30 and 90 degrees, 7e-6 at -17.3 on this 0..5 image). Masks are equal exactly.
    np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=2e-5)
    np.testing.assert_array_equal(ours[1], theirs[1])
    if degrees in (90.0, 30.0):
        np.testing.assert_array_equal(ours[0], theirs[0])
    # The bright pixel is 14 px right of the centre (16, 16); turning by +t degrees
    # (counter-clockwise as displayed) puts it at col 16 + 14 cos t, row 16 - 14 sin t.
    t = np.deg2rad(degrees)
    expected = (round(16 - 14 * np.sin(t)), round(16 + 14 * np.cos(t)))
    for out_image, out_mask in zip(*ours):
        assert np.unravel_index(np.argmax(out_image[..., 0]), (33, 33)) == expected
        assert out_mask[expected[0], expected[1], 0] == 1.0
        assert set(np.unique(out_mask)) == {0.0, 1.0}
    if degrees == 90.0:
        assert expected == (2, 16)
        np.testing.assert_array_equal(ours[1][0, ..., 0], np.rot90(masks[0, ..., 0]))


def test_keras_random_rotation_fills_masks_with_cval(fixed_angle):
    # The measured difference: with fill_mode="constant" RandomRotation fills the *mask* with
    # the image's fill_value too; RotationAugment fills masks with 0 so they stay binary.
    fixed_angle(np.pi / 4)
    ones = batch(np.ones((64, 64)), 1)
    ours = run(RotationAugment(45, fill_mode="constant", cval=0.25), ones, ones.copy())
    theirs = keras_rotation(ones, ones.copy(), 45.0, "constant", cval=0.25)
    np.testing.assert_array_equal(ours[0], theirs[0])  # images: identical
    filled = ours[1][0, ..., 0] == 0.0
    # 45 degrees on a square: (12 - 8 sqrt 2) / 4 = 17.2 % of the pixels come from outside.
    assert filled.mean() == pytest.approx((12 - 8 * np.sqrt(2)) / 4, abs=0.01)
    assert set(np.unique(ours[1])) == {0.0, 1.0}
    np.testing.assert_array_equal(theirs[1][0, ..., 0][filled], 0.25)
    np.testing.assert_array_equal(theirs[1][0, ..., 0][~filled], 1.0)
    assert theirs[1][0, 0, 0, 0] == 0.25 and ours[1][0, 0, 0, 0] == 0.0


def test_images_stay_float32_under_mixed_precision():
    # A RandomRotation built under mixed_bfloat16 returns bfloat16 images; apply must not.
    image = np.full((1, 16, 16, 1), 0.123456, np.float32)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        out_images, out_masks = RotationAugment(360).apply(
            image, image.copy(), tf.constant([1, 2], tf.int64)
        )
    finally:
        keras.config.set_dtype_policy("float32")
    assert out_images.dtype == tf.float32 and out_masks.dtype == tf.float32
    # "nearest" fill of a constant image: the value survives to float32 precision, which
    # bfloat16 (8 bits of mantissa: 0.12353515625) would not.
    np.testing.assert_allclose(out_images.numpy(), 0.123456, rtol=1e-6)


# --------------------------------------------------------------------------- flow


def constant_images(n=5, size=16):
    values = np.arange(n, dtype=np.float32) / 10 + 0.1  # 0.1, 0.2, ...
    images = np.broadcast_to(values[:, None, None], (n, size, size)).copy()
    masks = np.broadcast_to((np.arange(n) % 2)[:, None, None], (n, size, size)).astype(np.float32)
    return images, masks


def test_flow_batches_cover_every_image_each_epoch():
    images, masks = constant_images(5)
    # A constant image stays constant under rotation with fill_mode="nearest".
    flow = RotationAugment(rotation_range=360).flow(images, masks, batch_size=2, seed=0)
    orders = []
    for _ in range(2):
        order = []
        for expected in (2, 2, 1):
            out_images, out_masks = next(flow)
            assert out_images.shape == (expected, 16, 16, 1) and out_images.dtype == np.float32
            assert out_masks.shape == (expected, 16, 16, 1)
            for out_image, out_mask in zip(out_images, out_masks):
                index = int(round(out_image.mean() * 10 - 1))
                np.testing.assert_allclose(out_image, (index + 1) / 10, atol=1e-5)
                np.testing.assert_array_equal(out_mask, index % 2)  # still paired
                order.append(index)
        assert sorted(order) == [0, 1, 2, 3, 4]
        orders.append(order)
    assert orders[0] != orders[1]  # reshuffled every epoch


def test_flow_without_shuffle_and_seeded():
    images, masks = constant_images(4)
    flow = RotationAugment().flow(images, masks, batch_size=3, seed=0, shuffle=False)
    first, _ = next(flow)
    second, _ = next(flow)
    assert [round(float(v), 4) for v in first.mean(axis=(1, 2, 3))] == [0.1, 0.2, 0.3]
    assert [round(float(v), 4) for v in second.mean(axis=(1, 2, 3))] == [0.4]
    rng = np.random.default_rng(0)
    noise = rng.uniform(size=(4, 16, 16)).astype(np.float32)
    aug = RotationAugment(rotation_range=360)
    a = next(aug.flow(noise, noise > 0.5, batch_size=4, seed=5))
    b = next(aug.flow(noise, noise > 0.5, batch_size=4, seed=5))
    c = next(aug.flow(noise, noise > 0.5, batch_size=4, seed=6))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


# --------------------------------------------------------------------------- invalid arguments


@pytest.mark.parametrize("value", [-1, "30", None])
def test_invalid_rotation_range(value):
    with pytest.raises(ValueError, match=r"`rotation_range` must be a number of degrees >= 0"):
        RotationAugment(rotation_range=value)


def test_invalid_fill_mode():
    with pytest.raises(ValueError, match=r"`fill_mode` must be one of \('nearest', 'constant'"):
        RotationAugment(fill_mode="mirror")


@pytest.mark.parametrize("batch_size", [0, -2, 1.5])
def test_flow_invalid_batch_size(batch_size):
    images, masks = constant_images(2)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer, received"):
        next(RotationAugment().flow(images, masks, batch_size=batch_size))


def test_flow_mismatched_shapes():
    images, masks = constant_images(3)
    with pytest.raises(ValueError, match=r"`images` and `masks` must have the same \(N, H, W\)"):
        next(RotationAugment().flow(images, masks[:2]))


def test_flow_validates_when_called():
    # Like ImageDataGenerator.flow: a bad argument is reported where it is passed, not at the
    # first `next`, which may be deep inside a training loop.
    images, masks = constant_images(2)
    with pytest.raises(ValueError, match="`batch_size`"):
        RotationAugment().flow(images, masks, batch_size=0)


def test_flow_rejects_empty_arrays():
    # An empty array makes the endless loop spin without yielding; it must fail at the call.
    # (Only the call is made here, never `next`, so this test cannot hang.)
    empty = np.zeros((0, 16, 16), np.float32)
    with pytest.raises(ValueError, match="empty|no images"):
        RotationAugment().flow(empty, empty, batch_size=2)


# --------------------------------------------------------------------------- serialisation


def test_config_round_trip():
    aug = RotationAugment(90, "constant", 0.5, True, False)
    assert aug.get_config() == {
        "rotation_range": 90.0,
        "fill_mode": "constant",
        "cval": 0.5,
        "horizontal_flip": True,
        "vertical_flip": False,
    }
    clone = RotationAugment.from_config(aug.get_config())
    assert clone.get_config() == aug.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(aug))
    assert isinstance(restored, RotationAugment) and restored.get_config() == aug.get_config()
    assert repr(aug).startswith("RotationAugment(rotation_range=90.0, fill_mode='constant'")
