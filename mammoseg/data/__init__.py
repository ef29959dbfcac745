"""Mammogram data: records, readers (phantom, MIAS, CBIS-DDSM), split, augmentation, tf.data.

Modules:
    records       `Record`, `Lesion`; masks drawn from circles or mask files; `load_image`
    errors        `MammosegDataError` (and `MammosegDataWarning`), the readers' one family
    resample      sizes (`parse_size`) and the one resampling of images and masks
    mias          MIAS ``Info.txt`` + PGM reader
    cbis_ddsm     CBIS-DDSM case-description CSVs and DICOM folders
    dicom         DICOM reader (VOI LUT / window, MONOCHROME1) and writer
    pgm           PGM reader and writer
    phantom       the built-in phantom mammograms (MIAS layout), the default dataset
    phantom_cbis  the phantom in the CBIS-DDSM layout (DICOMs + CSVs)
    cache         the HDF5 preprocessing cache: build, read, checksums, staleness
    split         the patient split (60/20/20) and patient-level K folds (`kfold_by_patient`)
    augment       ImageDataGenerator-style rotations
    oversampling  tumour oversampling and the authors' large-tumour subset
    pipeline      tf.data: `make_dataset` (records or cache), `dataset_from_arrays`
    authors       the authors' 2018 protocol (leaky per-line split, their masks), to measure it
    verify        `verify_mias` (SHA-256 sums of the standard mini-MIAS) and `download_mias`

Example:
    >>> from mammoseg import data
    >>> records = data.load_records("phantom")  # doctest: +SKIP
    >>> train, val, test = data.split_by_patient(records)  # doctest: +SKIP
    >>> ds = data.make_dataset(train, size=256, batch_size=8)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable

from mammoseg.checks import closest_match
from mammoseg.data.errors import MammosegDataError, MammosegDataWarning
from mammoseg.data.records import (
    LESION_KINDS,
    Lesion,
    Record,
    load_image,
    load_instance_masks,
    load_mask,
)
from mammoseg.data.resample import parse_size, resample_image, resample_mask
from mammoseg.data.verify import MiasVerification, download_mias, verify_mias


def _load_phantom(root=None, **options):
    from mammoseg.data import phantom

    return phantom.load_phantom_records(root, **options)


def _load_mias(root=None, **options):
    from mammoseg.data import mias

    if root is None:
        raise ValueError("load_records('mias') needs `root`, the folder holding Info.txt")
    return mias.read_mias(root, **options)


def _load_cbis(root=None, **options):
    from mammoseg.data import cbis_ddsm

    if root is None:
        raise ValueError("load_records('cbis-ddsm') needs `root`, the CBIS-DDSM download folder")
    return cbis_ddsm.load_cbis_records(root, **options)


_LOADERS: dict[str, Callable[..., list[Record]]] = {
    "phantom": _load_phantom,
    "mias": _load_mias,
    "cbis-ddsm": _load_cbis,
}


def load_records(name: str, root: str | os.PathLike | None = None, **options) -> list[Record]:
    """Load a dataset as a list of `Record`s.

    Args:
        name: "phantom" (built-in, generated once into a cache folder), "mias" or "cbis-ddsm".
        root: the dataset folder ("phantom": optional, defaults to the cache folder).
        **options: passed to the reader, e.g. ``missing="skip"`` for MIAS or ``n_images=`` for
            the phantom. ``errors="skip"`` (MIAS and CBIS-DDSM) skips an image whose data line,
            CSV row or file is bad, with a `MammosegDataWarning` naming the file and line,
            instead of raising; the default ``errors="raise"`` stops at the first.

    Returns:
        The records, sorted by image id.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones and the closest).
        MammosegDataError: a file is missing or malformed.

    Example:
        >>> records = load_records("mias", "../shared/data/mias-dev")  # doctest: +SKIP
        >>> len(records)
        110
    """
    if name not in _LOADERS:
        hint = closest_match(name, list(_LOADERS))
        raise ValueError(f"unknown dataset {name!r}; valid names: {sorted(_LOADERS)}{hint}")
    return _LOADERS[name](root, **options)


def __getattr__(attribute: str):
    # Heavier modules (TensorFlow, scikit-learn) load on first use, so `import mammoseg.data`
    # stays fast for the readers.
    lazy = {
        "split_by_patient": "mammoseg.data.split",
        "kfold_by_patient": "mammoseg.data.split",
        "Fold": "mammoseg.data.split",
        "oversample": "mammoseg.data.oversampling",
        "authors_large_tumour_subset": "mammoseg.data.oversampling",
        "RotationAugment": "mammoseg.data.augment",
        "make_dataset": "mammoseg.data.pipeline",
        "dataset_from_arrays": "mammoseg.data.pipeline",
        "decode_records": "mammoseg.data.pipeline",
    }
    if attribute in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[attribute]), attribute)
    raise AttributeError(f"module 'mammoseg.data' has no attribute {attribute!r}")


__all__ = [
    "Fold",
    "LESION_KINDS",
    "Lesion",
    "MammosegDataError",
    "MammosegDataWarning",
    "MiasVerification",
    "Record",
    "authors_large_tumour_subset",
    "dataset_from_arrays",
    "decode_records",
    "download_mias",
    "kfold_by_patient",
    "load_image",
    "load_instance_masks",
    "load_mask",
    "load_records",
    "make_dataset",
    "oversample",
    "parse_size",
    "resample_image",
    "resample_mask",
    "split_by_patient",
    "RotationAugment",
    "verify_mias",
]
