"""Oversampling of large tumours (paper section V.D).

The paper "identified tumours that are above average large ... and sampled more of them into our
training set"; the authors' code (facts.md §1) in the end trained on the MIAS lines with radius
> 50 only (32 images), repeated 300 times per epoch. Both are here: `oversample` repeats the
records whose lesion is large, `authors_large_tumour_subset` keeps only those.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mammoseg.data.records import Record, image_shape, load_mask


def lesion_size(record: Record, by: str = "radius", kinds: Sequence[str] | None = ("mass",)):
    """Largest lesion radius (pixels) or total lesion area (share of the image) of a record.

    Lesions given by a mask file count by their equivalent radius, sqrt(area / pi).
    """
    if by not in ("radius", "area"):
        raise ValueError(f"`by` must be 'radius' or 'area', received {by!r}")
    if not record.has_lesion(kinds):
        return 0.0
    if by == "radius" and all(les.mask_path is None for les in record.lesions):
        return max(record.lesion_radii(kinds), default=0.0)
    mask = load_mask(record, None, kinds)
    area = float(mask.sum())
    if by == "area":
        height, width = image_shape(record)
        return area / (height * width)
    return float(np.sqrt(area / np.pi))


def oversample(
    records: Sequence[Record],
    threshold: float | None = None,
    factor: int = 3,
    by: str = "radius",
    kinds: Sequence[str] | None = ("mass",),
) -> list[Record]:
    """Repeat records whose lesion is larger than ``threshold`` so they appear ``factor`` times.

    Args:
        records: the training records (never oversample validation or test data).
        threshold: size above which a record is repeated, in pixels for ``by="radius"`` or as
            a share of the image for ``by="area"``; None: the mean size over records with a
            lesion ("above average large", as the paper says).
        factor: total number of copies of each large-lesion record (1 = no oversampling).
        by: "radius" or "area".
        kinds: lesion kinds that count.

    Returns:
        A new list: the input records in order, followed by the extra copies.

    Example:
        >>> train = oversample(train, threshold=50, factor=3)  # doctest: +SKIP
    """
    if by not in ("radius", "area"):
        raise ValueError(f"`by` must be 'radius' or 'area', received {by!r}")
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"`factor` must be an integer >= 1, received {factor!r}")
    sizes = [lesion_size(r, by, kinds) for r in records]
    if threshold is None:
        positive = [s for s in sizes if s > 0]
        threshold = float(np.mean(positive)) if positive else 0.0
    large = [r for r, s in zip(records, sizes) if s > threshold and s > 0]
    return list(records) + large * (factor - 1)


def authors_large_tumour_subset(
    records: Sequence[Record], min_radius: float = 50.0, kinds: Sequence[str] | None = None
) -> list[Record]:
    """The authors' V.D training set: only images with a lesion of radius > ``min_radius``.

    With every lesion kind (the default, as the authors did) these are 32 MIAS images (their
    24/8/8 split). Radii are in the image's own pixels
    (1024² for MIAS).
    """
    return [r for r in records if lesion_size(r, "radius", kinds) > min_radius]
