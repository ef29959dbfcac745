"""Shape-keeping augmentation for Mask R-CNN training: random flips and quarter turns.

`MaskRCNN.train` takes an imgaug-style augmenter, as matterport's (imgaug itself is not needed),
or any callable ``(image, masks) -> (image, masks)`` such as this one. `RandomFlips` is the one
the V.F experiment uses: a mass looks the same mirrored or turned, so each image yields up to
eight different views.

Example:
    >>> flips = RandomFlips(seed=0)
    >>> image, masks = flips(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 1), bool))
    >>> image.shape, masks.shape
    ((4, 4, 3), (4, 4, 1))
"""

from __future__ import annotations

import numpy as np


class RandomFlips:
    """Flip left-right and up-down, each with probability ``p``; turn square images by a
    random multiple of 90° when ``rotate90``. The image and its masks move together.

    Args:
        p: probability of each flip, in [0, 1].
        rotate90: also turn square images by 0, 90, 180 or 270 degrees.
        seed: seed of the generator (None: fresh entropy).

    Raises:
        ValueError: ``p`` is outside [0, 1].
    """

    def __init__(self, p: float = 0.5, rotate90: bool = True, seed: int | None = None) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"`p` must be in [0, 1], received {p!r}")
        self.p = float(p)
        self.rotate90 = bool(rotate90)
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if image.shape[:2] != masks.shape[:2]:
            raise ValueError(
                f"image and masks must share height and width, received {image.shape} and "
                f"{masks.shape}"
            )
        if self.rng.random() < self.p:
            image, masks = image[:, ::-1], masks[:, ::-1]
        if self.rng.random() < self.p:
            image, masks = image[::-1], masks[::-1]
        if self.rotate90 and image.shape[0] == image.shape[1]:
            turns = int(self.rng.integers(4))
            image, masks = np.rot90(image, turns), np.rot90(masks, turns)
        return np.ascontiguousarray(image), np.ascontiguousarray(masks)

    def __repr__(self) -> str:
        return f"RandomFlips(p={self.p}, rotate90={self.rotate90})"


__all__ = ["RandomFlips"]
