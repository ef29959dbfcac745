"""Rotation augmentation with the semantics of Keras 2's `ImageDataGenerator` (paper V.D).

The authors zipped two `ImageDataGenerator(rotation_range=360)` flows (image and mask) that
shared a seed. Keras 3 removed `ImageDataGenerator` from its public API, so `RotationAugment`
reproduces what they used: an angle drawn uniformly in [-rotation_range, rotation_range] degrees,
rotation about the image centre, `fill_mode` "nearest" | "constant" | "reflect" | "wrap" with
`cval`, and optional horizontal / vertical flips. Image and mask always receive the same
transform; the mask is resampled with nearest-neighbour interpolation so it stays binary.

It runs as Keras ops (`keras.ops.image.affine_transform`, the op `keras.layers.RandomRotation`
calls), on whole batches, inside tf.data, and as a NumPy `flow(images, masks, batch_size, seed)`
generator.

Relation to `keras.layers.RandomRotation` (issue #18, measured with Keras 3.15.1, TF 2.21):
for the same angle the rotation matrix is the one RandomRotation builds (centre ((W-1)/2,
(H-1)/2), a positive angle turns the image counter-clockwise as displayed, like ``np.rot90``),
and ``rotation_range=r`` corresponds to ``RandomRotation(factor=r / 360)``. Called on
``{"images": ..., "segmentation_masks": ...}`` at a fixed angle, RandomRotation returns the same
images (max abs difference 0 at 30, 45, 90 and 180 degrees; 7e-6 at -17.3 degrees, from the
degree-to-radian rounding) and the same masks, for fill modes nearest, reflect, wrap and constant
with ``cval=0``; ``tests/data/test_augment.py`` checks this. `RotationAugment` is not a wrapper
around the layer because of three measured differences that matter here:

- RandomRotation fills *masks* with the image's ``fill_value`` in constant mode, so with
  ``cval=0.25`` a mask rotated by 45 degrees has 0.25 in its corners (17 % of the pixels); here
  masks are always filled with 0 and stay binary.
- Its angles come from a stateful ``SeedGenerator``: ``keras.random`` rejects a tensor seed
  (``ValueError: Argument `seed` must be either an integer or an instance of SeedGenerator``),
  and two layers built with the same ``seed`` gave different angles in a parallel ``tf.data``
  map (they agree only in a sequential one).
  `apply` takes a per-batch seed (the pipeline draws new ones every epoch from
  ``tf.data.Dataset.random``), so a run is reproducible however many map calls run at once.
- Under the ``mixed_bfloat16`` policy the experiments set, a layer created without ``dtype``
  rotates and returns images in bfloat16; here images stay float32.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

FILL_MODES = ("nearest", "constant", "reflect", "wrap")


@keras.saving.register_keras_serializable(package="mammoseg")
class RotationAugment:
    """Random rotations (and flips) applied identically to images and masks.

    Args:
        rotation_range: maximum rotation in degrees; angles are uniform in [-r, r]
            (the authors used 360).
        fill_mode: how points outside the input are filled: "nearest" (Keras' default),
            "constant", "reflect" or "wrap".
        cval: the image fill value for ``fill_mode="constant"`` (masks are filled with 0).
        horizontal_flip: flip left-right with probability 0.5.
        vertical_flip: flip top-bottom with probability 0.5.

    Example:
        >>> aug = RotationAugment(rotation_range=360, fill_mode="constant")
        >>> images = np.zeros((4, 64, 64, 1), "float32"); masks = images.copy()
        >>> batch_images, batch_masks = next(aug.flow(images, masks, batch_size=2, seed=1))
        >>> batch_images.shape
        (2, 64, 64, 1)
    """

    def __init__(
        self,
        rotation_range: float = 0.0,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
    ) -> None:
        if (
            isinstance(rotation_range, bool)
            or not isinstance(rotation_range, numbers.Real)
            or rotation_range < 0
        ):
            raise ValueError(
                f"`rotation_range` must be a number of degrees >= 0, received {rotation_range!r}"
            )
        if fill_mode not in FILL_MODES:
            raise ValueError(f"`fill_mode` must be one of {FILL_MODES}, received {fill_mode!r}")
        self.rotation_range = float(rotation_range)
        self.fill_mode = fill_mode
        self.cval = float(cval)
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)

    def get_config(self) -> dict:
        return {
            "rotation_range": self.rotation_range,
            "fill_mode": self.fill_mode,
            "cval": self.cval,
            "horizontal_flip": self.horizontal_flip,
            "vertical_flip": self.vertical_flip,
        }

    @classmethod
    def from_config(cls, config: dict) -> RotationAugment:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"RotationAugment({args})"

    # ----------------------------------------------------------------- TensorFlow path

    def _rotation_matrices(self, angles: tf.Tensor, height, width) -> tf.Tensor:
        """Projective transforms (output → input coordinates) rotating about the centre."""
        cos, sin = tf.cos(angles), tf.sin(angles)
        cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
        cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
        zeros = tf.zeros_like(angles)
        return tf.stack(
            [
                cos,
                -sin,
                cx - cos * cx + sin * cy,
                sin,
                cos,
                cy - sin * cx - cos * cy,
                zeros,
                zeros,
            ],
            axis=1,
        )

    def apply(
        self, images: tf.Tensor, masks: tf.Tensor, seed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Transform a batch: images and masks (B, H, W, C) float32, ``seed`` a shape-[2] int.

        Deterministic for a given seed (stateless random ops), so it can run in a parallel
        tf.data map and still give the same augmentation for the same seed.
        """
        images = tf.convert_to_tensor(images, tf.float32)
        masks = tf.convert_to_tensor(masks, tf.float32)
        batch = tf.shape(images)[0]
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
        if self.rotation_range > 0:
            limit = np.deg2rad(self.rotation_range)
            angles = tf.random.stateless_uniform([batch], seeds[0], -limit, limit)
            transforms = self._rotation_matrices(angles, height, width)
            common = dict(
                transform=transforms, fill_mode=self.fill_mode, data_format="channels_last"
            )
            images = keras.ops.image.affine_transform(
                images, interpolation="bilinear", fill_value=self.cval, **common
            )
            # Masks: nearest neighbour so they stay binary, and 0 (not cval) outside the input.
            masks = keras.ops.image.affine_transform(
                masks, interpolation="nearest", fill_value=0.0, **common
            )
        for enabled, key, axis in ((self.horizontal_flip, 1, 2), (self.vertical_flip, 2, 1)):
            if enabled:
                flip = tf.random.stateless_uniform([batch], seeds[key]) < 0.5
                flip = tf.reshape(flip, [-1, 1, 1, 1])
                images = tf.where(flip, tf.reverse(images, [axis]), images)
                masks = tf.where(flip, tf.reverse(masks, [axis]), masks)
        return images, masks

    # ----------------------------------------------------------------- NumPy path

    def flow(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        batch_size: int = 32,
        seed: int | None = None,
        shuffle: bool = True,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Endless NumPy batches of augmented (images, masks), like `ImageDataGenerator.flow`.

        Args:
            images: (N, H, W, C) or (N, H, W) array.
            masks: same leading shape as ``images``.
            batch_size: images per batch; the last batch of an epoch may be smaller.
            seed: random seed for shuffling and transforms.
            shuffle: reshuffle the order every epoch.
        """
        images, masks = np.asarray(images, np.float32), np.asarray(masks, np.float32)
        if images.ndim == 3:
            images, masks = images[..., None], masks[..., None]
        if images.shape[:3] != masks.shape[:3]:
            raise ValueError(
                f"`images` and `masks` must have the same (N, H, W), received {images.shape} "
                f"and {masks.shape}"
            )
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, received {batch_size!r}")
        if len(images) == 0:
            raise ValueError("`images` is empty: nothing to flow")
        # Validation above runs when `flow` is called; the batches come from an inner generator.
        return self._batches(images, masks, int(batch_size), seed, shuffle)

    def _batches(self, images, masks, batch_size, seed, shuffle):
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(len(images)) if shuffle else np.arange(len(images))
            for start in range(0, len(images), batch_size):
                index = order[start : start + batch_size]
                batch_seed = tf.constant(rng.integers(0, 2**31 - 1, size=2), tf.int64)
                out_images, out_masks = self.apply(images[index], masks[index], batch_seed)
                yield out_images.numpy(), out_masks.numpy()
