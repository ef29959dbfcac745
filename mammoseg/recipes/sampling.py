"""Lesion-centred patch sampling (nnU-Net's foreground oversampling) for whole mammograms.

A mass covers about 0.6 % of a mini-MIAS film (facts.md §4); patches drawn uniformly would hold
a lesion a few times in a hundred and teach the network that "nothing" is always right. nnU-Net
forces a third of each batch to contain foreground; here each patch is, with probability
``lesion_fraction``, centred near a random lesion (the lesion's centre always inside the patch),
and otherwise centred on a random pixel of the breast.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

from mammoseg.recipes.config import check_scale_range
from mammoseg.recipes.preprocess import WorkingImage


class LesionCentredSampler:
    """Draw (image, mask) patches from working images, a share of them centred on lesions.

    Args:
        images: `WorkingImage`s with truth masks.
        patch_size: side of the square patches.
        lesion_fraction: probability that a patch is centred on a lesion (1/3 as in nnU-Net).
        batch_size: patches per batch.
        augment: random flips, 90° rotations and a small intensity scale and shift.
        seed: seed of the random generator.
        scale_range: (low, high) zoom factors drawn log-uniformly per patch when ``augment``
            is on: a patch covers ``patch_size / zoom`` working pixels, resampled to
            ``patch_size`` (image bilinear, mask nearest), so one training mass is also seen
            smaller and larger. (1, 1) turns it off.

    Raises:
        ValueError: no images, a patch size below 8, a fraction outside [0, 1] or a bad
            ``scale_range``.

    Example:
        >>> sampler = LesionCentredSampler(prepared, patch_size=128)  # doctest: +SKIP
        >>> x, y = sampler.batch()
        >>> x.shape, y.shape
        ((8, 128, 128, 1), (8, 128, 128, 1))
    """

    def __init__(
        self,
        images: Sequence[WorkingImage],
        patch_size: int,
        *,
        lesion_fraction: float = 1.0 / 3.0,
        batch_size: int = 8,
        augment: bool = True,
        seed: int = 0,
        scale_range: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        if not images:
            raise ValueError("`images` must hold at least one WorkingImage, received none")
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 8:
            raise ValueError(f"`patch_size` must be an integer >= 8, received {patch_size!r}")
        if not 0.0 <= lesion_fraction <= 1.0:
            raise ValueError(f"`lesion_fraction` must be in [0, 1], received {lesion_fraction!r}")
        low, high = check_scale_range(scale_range)
        if any(im.mask is None for im in images):
            raise ValueError("every image needs a truth mask: use `prepare_record`")
        self.images = list(images)
        self.patch_size = patch_size
        self.lesion_fraction = float(lesion_fraction)
        self.batch_size = batch_size
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.scale_range = (low, high)
        self.with_lesion = [i for i, im in enumerate(self.images) if im.lesions]
        # Room for the largest source window a zoom-out can ask for, centred anywhere.
        self._half = half = int(np.ceil(patch_size / (2 * low))) + 1
        pad = ((half, half), (half, half))
        self._padded = [
            (np.pad(im.image, pad, constant_values=im.background), np.pad(im.mask, pad))
            for im in self.images
        ]
        self._breast_pixels = [
            np.argwhere(im.breast) if im.breast.any() else np.argwhere(np.ones_like(im.breast))
            for im in self.images
        ]

    def sample_centre(self) -> tuple[int, int, int, bool]:
        """(image index, row, col, lesion-centred?) of the next patch's centre."""
        rng = self.rng
        if self.with_lesion and rng.uniform() < self.lesion_fraction:
            index = int(rng.choice(self.with_lesion))
            lesions = self.images[index].lesions
            row, col, radius = lesions[rng.integers(len(lesions))]
            # A random point of the lesion, no further from its centre than keeps the centre
            # well inside the patch.
            reach = min(radius, 3 * self.patch_size / 8)
            angle, dist = rng.uniform(0, 2 * np.pi), reach * np.sqrt(rng.uniform())
            row, col = row + dist * np.sin(angle), col + dist * np.cos(angle)
            height, width = self.images[index].image.shape
            row = int(np.clip(np.round(row), 0, height - 1))
            col = int(np.clip(np.round(col), 0, width - 1))
            return index, row, col, True
        index = int(rng.integers(len(self.images)))
        pixels = self._breast_pixels[index]
        row, col = pixels[rng.integers(len(pixels))]
        return index, int(row), int(col), False

    def patch(
        self, index: int, row: int, col: int, zoom: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (image, mask) patch of image ``index`` centred on (row, col), padded as needed.

        With ``zoom`` other than 1 the patch covers ``patch_size / zoom`` working pixels,
        resampled to ``patch_size``.
        """
        image, mask = self._padded[index]
        size = self.patch_size
        source = size if zoom == 1.0 else max(2, int(round(size / zoom)))
        # (row, col) sits at (row + half, col + half) in the padded arrays.
        top, left = row + self._half - source // 2, col + self._half - source // 2
        window = image[top : top + source, left : left + source]
        window_mask = mask[top : top + source, left : left + source]
        if source == size:
            return window, window_mask
        factor = size / source
        zoomed = ndimage.zoom(window, factor, order=1, grid_mode=True, mode="nearest")
        zoomed_mask = ndimage.zoom(window_mask, factor, order=0, grid_mode=True, mode="nearest")
        return zoomed[:size, :size], zoomed_mask[:size, :size]

    def _augment(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k), np.rot90(mask, k)
        if rng.uniform() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        image = image * rng.uniform(0.9, 1.1) + rng.uniform(-0.1, 0.1)
        return image, mask

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """One batch: images (B, P, P, 1) float32 and masks (B, P, P, 1) float32."""
        size = self.patch_size
        x = np.empty((self.batch_size, size, size, 1), np.float32)
        y = np.empty((self.batch_size, size, size, 1), np.float32)
        for b in range(self.batch_size):
            index, row, col, _ = self.sample_centre()
            zoom = 1.0
            if self.augment and self.scale_range != (1.0, 1.0):
                zoom = float(np.exp(self.rng.uniform(*np.log(self.scale_range))))
            image, mask = self.patch(index, row, col, zoom)
            if self.augment:
                image, mask = self._augment(image, mask)
            x[b, ..., 0], y[b, ..., 0] = image, mask
        return x, y

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield self.batch()

    def dataset(self):
        """An endless `tf.data.Dataset` of `batch()` results (pass ``steps_per_epoch`` to fit)."""
        import tensorflow as tf

        shape = (self.batch_size, self.patch_size, self.patch_size, 1)
        spec = tf.TensorSpec(shape, tf.float32)
        return tf.data.Dataset.from_generator(
            lambda: iter(self), output_signature=(spec, spec)
        ).prefetch(2)


__all__ = ["LesionCentredSampler"]
