"""The authors' 2018 data protocol, reproduced to measure what it changes (never the default).

What their code did (facts.md §1), each as a function the experiments' ``--protocol authors``
uses:

* `per_line_split`: one sample per ``Info.txt`` line (an image with several lesions appears
  once per lesion), split with ``train_test_split(train_size=0.6, random_state=42)`` and the rest
  50/50, so one image can sit in train and test at once; nothing is grouped by patient.
* `authors_mask`: every lesion kind is drawn, but of an image with several circles only the
  last one survived their first mask writer; CBIS-DDSM masks were resized bilinearly as 8-bit
  images and only pixels equal to 255 were kept, so mask edges and small masks vanish.
* `twins`: how many test samples have their image (or their patient) in the training part.

Batch 1 and float32 are training settings; the experiments set them.

Example:
    >>> train, val, test = per_line_split(records)  # doctest: +SKIP
    >>> twins(train, test)["same_image"]  # doctest: +SKIP
    3
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import Record, Size, draw_circle, image_shape, read_mask
from mammoseg.data.resample import parse_size

AUTHORS_RANDOM_STATE = 42


def per_line_split(
    records: Sequence[Record], random_state: int = AUTHORS_RANDOM_STATE
) -> tuple[list[Record], list[Record], list[Record]]:
    """The authors' leaky split: 60 % of the lines to train, the rest halved (val, test).

    Each record stands for as many samples as it has lesions with coordinates (one for a
    normal image), in the input order, as the authors' sample list repeated images with
    several ``Info.txt`` lines. scikit-learn's ``train_test_split`` with ``random_state=42``
    splits that list twice: ``train_size=0.6``, then the rest 50/50 (its first half is the
    validation part; the authors' code does not say which half they called which).

    Returns:
        (train, val, test) lists of records; a record may appear several times, and in
        several parts.

    Raises:
        MammosegDataError: fewer than 3 samples (a part would be empty).

    Example:
        >>> train, val, test = per_line_split(records)  # doctest: +SKIP
    """
    from sklearn.model_selection import train_test_split

    samples = [r for r in records for _ in range(max(1, _line_count(r)))]
    if len(samples) < 3:
        raise MammosegDataError(
            f"the authors' split needs at least 3 samples (Info.txt lines), found {len(samples)}"
        )
    train, rest = train_test_split(samples, train_size=0.6, random_state=random_state)
    val, test = train_test_split(rest, train_size=0.5, random_state=random_state)
    return list(train), list(val), list(test)


def _line_count(record: Record) -> int:
    return sum(1 for lesion in record.lesions if lesion.has_region)


def twins(train: Sequence[Record], test: Sequence[Record]) -> dict[str, int]:
    """Leakage of a split: test samples whose image, or whose patient, is also in train.

    Example:
        >>> a = Record("mdb001", "p1", "mias", "a.pgm")
        >>> b = Record("mdb002", "p1", "mias", "b.pgm")
        >>> twins([a], [a, b])
        {'test_samples': 2, 'same_image': 1, 'same_patient': 2}
    """
    images = {r.image_id for r in train}
    patients = {r.patient_id for r in train}
    return {
        "test_samples": len(test),
        "same_image": sum(r.image_id in images for r in test),
        "same_patient": sum(r.patient_id in patients for r in test),
    }


def last_lesion_only(record: Record) -> Record:
    """The record as the authors' first mask writer saw it: only its last drawable lesion.

    Example:
        >>> last_lesion_only(record).lesions == record.lesions[-1:]  # doctest: +SKIP
        True
    """
    drawable = [lesion for lesion in record.lesions if lesion.has_region]
    return replace(record, lesions=tuple(drawable[-1:]))


def authors_mask(record: Record, size: Size | None = None) -> np.ndarray:
    """The mask the authors trained on: uint8 {0, 1}, every lesion kind.

    * Circles (MIAS, the phantom): only the last drawable lesion's circle.
    * Mask files (CBIS-DDSM): every mask of the image OR-ed, each resized as an 8-bit image
      (0 or 255) with bilinear interpolation, then only pixels equal to 255 kept.

    Args:
        record: the mammogram.
        size: int (square) or (height, width); None keeps the image's own size.

    Example:
        >>> authors_mask(record, 1024).sum() <= load_mask(record, 1024, kinds=None).sum()
        ... # doctest: +SKIP
        True
    """
    target = parse_size(size) or image_shape(record)
    out = np.zeros(target, np.uint8)
    with_files = [les for les in record.lesions if les.mask_path is not None]
    if with_files:
        for lesion in with_files:
            out |= _resized_255(read_mask(lesion.mask_path), target)
        return out
    last = last_lesion_only(record).lesions
    for lesion in last:
        out |= draw_circle(target, lesion.center, lesion.radius, image_shape(record)).astype(
            np.uint8
        )
    return out


def _resized_255(inside: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the 0/255 mask, then ``== 255`` (facts.md §1)."""
    import tensorflow as tf

    image = inside.astype(np.float32)[None, :, :, None] * 255.0
    resized = tf.image.resize(image, target, method="bilinear", antialias=False).numpy()
    return (np.round(resized[0, :, :, 0]) == 255).astype(np.uint8)


__all__ = [
    "AUTHORS_RANDOM_STATE",
    "authors_mask",
    "last_lesion_only",
    "per_line_split",
    "twins",
]
