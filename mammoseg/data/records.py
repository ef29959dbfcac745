"""What one mammogram is: `Record` and its `Lesion`s, and how to turn them into arrays.

Every loader (phantom, MIAS, CBIS-DDSM) produces the same records, so everything downstream
(split, pipeline, models, experiments) is independent of where the images came from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mammoseg.data.errors import MammosegDataError
from mammoseg.data.resample import Size, parse_size, resample_image, resample_mask

LESION_KINDS = ("mass", "calcification", "architectural_distortion", "asymmetry")
PATHOLOGIES = ("benign", "malignant", None)


@dataclass(frozen=True)
class Lesion:
    """One abnormality on a mammogram.

    Args:
        kind: one of "mass", "calcification", "architectural_distortion", "asymmetry".
        pathology: "benign", "malignant" or None when the source does not say.
        center: (row, col) in the image's own pixels, origin at the top-left; None when the
            source gives no coordinates (such lesions are kept, never dropped).
        radius: radius in the image's own pixels, or None.
        mask_path: the lesion's ROI mask file, for sources that ship masks (CBIS-DDSM).
        attributes: anything else the source says (assessment, subtlety, shape, margins...).

    Example:
        >>> Lesion("mass", "benign", center=(489.0, 535.0), radius=197.0).has_region
        True
    """

    kind: str
    pathology: str | None = None
    center: tuple[float, float] | None = None
    radius: float | None = None
    mask_path: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in LESION_KINDS:
            raise ValueError(f"`kind` must be one of {LESION_KINDS}, received {self.kind!r}")
        if self.pathology not in PATHOLOGIES:
            raise ValueError(
                f"`pathology` must be one of {PATHOLOGIES}, received {self.pathology!r}"
            )
        if self.radius is not None and self.radius < 0:
            raise ValueError(f"`radius` must be >= 0, received {self.radius}")

    @property
    def has_region(self) -> bool:
        """True when the lesion can be drawn: a mask file, or a centre and a radius."""
        return self.mask_path is not None or (self.center is not None and self.radius is not None)


@dataclass(frozen=True)
class Record:
    """One mammogram and what is known about it.

    Args:
        image_id: unique name of the image ("mdb001", "Mass-Training_P_00001_LEFT_CC").
        patient_id: the woman it belongs to; the split never puts one patient in two parts.
        source: "phantom", "mias" or "cbis-ddsm".
        path: the image file (PGM or DICOM).
        tissue: background tissue / breast density as the source gives it, or None.
        laterality: "L", "R" or None.
        view: "CC", "MLO" or None.
        lesions: the abnormalities, possibly empty (a normal mammogram).
        shape: (height, width) of the image file in pixels, or None if not yet known.

    Example:
        >>> rec = Record("mdb001", "mias_p001", "mias", "mdb001.pgm", "G", "R", "MLO", ())
        >>> rec.has_lesion()
        False
    """

    image_id: str
    patient_id: str
    source: str
    path: str
    tissue: str | None = None
    laterality: str | None = None
    view: str | None = None
    lesions: tuple[Lesion, ...] = ()
    shape: tuple[int, int] | None = None

    def has_lesion(self, kinds: Sequence[str] | None = ("mass",)) -> bool:
        """True if the record has a drawable lesion of one of ``kinds`` (None: any kind)."""
        return bool(_select(self, kinds))

    def lesion_radii(self, kinds: Sequence[str] | None = ("mass",)) -> list[float]:
        """Radii of the chosen lesions that have one (mask lesions: radius of equal area)."""
        return [les.radius for les in _select(self, kinds) if les.radius is not None]


def _select(record: Record, kinds: Sequence[str] | None) -> list[Lesion]:
    if kinds is not None:
        if isinstance(kinds, str):
            kinds = (kinds,)
        unknown = [k for k in kinds if k not in LESION_KINDS]
        if unknown:
            raise ValueError(f"`kinds` must be drawn from {LESION_KINDS}, received {unknown}")
    return [
        les for les in record.lesions if les.has_region and (kinds is None or les.kind in kinds)
    ]


# --------------------------------------------------------------------------- pixels


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (PGM, DICOM, PNG) into float32 [0, 1], shape (height, width)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pgm":
        from mammoseg.data.pgm import read_pgm

        pixels, maxval = read_pgm(path)
        return pixels.astype(np.float32) / np.float32(maxval)
    if suffix in (".dcm", ".dicom", "") and path.exists():
        from mammoseg.data.dicom import read_dicom

        image, _ = read_dicom(path)
        return image
    if not path.exists():
        raise MammosegDataError("image file not found", path=path)
    from PIL import Image

    try:
        with Image.open(path) as img:
            array = np.asarray(
                img.convert("I;16") if img.mode in ("I", "I;16") else img.convert("L")
            )
    except OSError as err:
        raise MammosegDataError(f"cannot decode image: {err}", path=path) from err
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    return (array.astype(np.float32) / np.float32(scale)).clip(0.0, 1.0)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read an ROI mask file as booleans (any value > 0 is lesion), shape (height, width).

    Raises:
        MammosegDataError: the file cannot be read, or it marks no pixel (an all-zero mask
            would silently teach "no lesion here"); the message names the file.

    Example:
        >>> read_mask("Mass-Training_P_00001_LEFT_CC_1/000001.dcm").any()  # doctest: +SKIP
        True
    """
    inside = read_pixels(path) > 0
    if not inside.any():
        raise MammosegDataError("the ROI mask is all zero: it marks no lesion pixel", path=path)
    return inside


def image_shape(record: Record) -> tuple[int, int]:
    """(height, width) of the record's image file, from the record or the file header."""
    if record.shape is not None:
        return record.shape
    if record.path.lower().endswith(".pgm"):
        from mammoseg.data.pgm import read_pgm_shape

        return read_pgm_shape(record.path)
    return read_pixels(record.path).shape


def draw_circle(
    shape: tuple[int, int], center: tuple[float, float], radius: float, source_shape=None
) -> np.ndarray:
    """Boolean disc on a (height, width) grid; ``center``/``radius`` in ``source_shape`` pixels.

    A target pixel is inside when its centre, mapped back to the source image, lies within the
    circle. The pixel holding the centre is always set, so a tiny lesion never vanishes.
    """
    height, width = shape
    src_h, src_w = source_shape or shape
    sy, sx = src_h / height, src_w / width
    rows = (np.arange(height, dtype=np.float64) + 0.5) * sy - 0.5
    cols = (np.arange(width, dtype=np.float64) + 0.5) * sx - 0.5
    dy = (rows - center[0])[:, None]
    dx = (cols - center[1])[None, :]
    disc = dy * dy + dx * dx <= float(radius) ** 2
    r = int(np.clip(np.floor((center[0] + 0.5) / sy), 0, height - 1))
    c = int(np.clip(np.floor((center[1] + 0.5) / sx), 0, width - 1))
    disc[r, c] = True
    return disc


def _lesion_mask(record: Record, lesion: Lesion, target: tuple[int, int]) -> np.ndarray:
    if lesion.mask_path is not None:
        return resample_mask(read_mask(lesion.mask_path), target)
    return draw_circle(target, lesion.center, lesion.radius, image_shape(record))


# --------------------------------------------------------------------------- public loaders


def load_image(record: Record, size: Size | None = None) -> np.ndarray:
    """The record's image as float32 in [0, 1], shape ``size`` (None: the file's own size).

    Example:
        >>> image = load_image(records[0], 256)  # doctest: +SKIP
        >>> image.shape, image.dtype
        ((256, 256), dtype('float32'))
    """
    pixels = read_pixels(record.path)
    target = parse_size(size)
    if target is None or pixels.shape[:2] == target:
        return pixels.astype(np.float32, copy=False)
    return resample_image(pixels, target)


def load_mask(
    record: Record, size: Size | None = None, kinds: Sequence[str] | None = ("mass",)
) -> np.ndarray:
    """Union of the chosen lesions as a uint8 {0, 1} mask of shape ``size``.

    Args:
        record: the mammogram.
        size: int (square) or (height, width); None keeps the image's own size.
        kinds: lesion kinds to draw; None draws every kind. Lesions without a region
            (no coordinates, no mask file) cannot be drawn and are left out.

    Example:
        >>> mask = load_mask(records[0], 256)  # doctest: +SKIP
        >>> mask.dtype, set(np.unique(mask)) <= {0, 1}
        (dtype('uint8'), True)
    """
    target = parse_size(size) or image_shape(record)
    out = np.zeros(target, dtype=np.uint8)
    for lesion in _select(record, kinds):
        out |= _lesion_mask(record, lesion, target).astype(np.uint8)
    return out


def load_instance_masks(
    record: Record, size: Size | None = None, kinds: Sequence[str] | None = ("mass",)
) -> np.ndarray:
    """One boolean mask per chosen lesion, shape (height, width, N), for instance models."""
    target = parse_size(size) or image_shape(record)
    masks = [_lesion_mask(record, les, target) for les in _select(record, kinds)]
    if not masks:
        return np.zeros((*target, 0), dtype=bool)
    return np.stack(masks, axis=-1)
