"""matterport's `Dataset` (classes and images from any source) and an adapter for mammoseg Records.

Subclass `Dataset` and override `load_mask` as with matterport, or use `RecordDataset` to train on
any dataset mammoseg can load (phantom, MIAS circles, CBIS-DDSM ROI masks).

Example:
    >>> from mammoseg import data
    >>> records = data.load_records("phantom")  # doctest: +SKIP
    >>> dataset = RecordDataset.from_records(records, size=256)  # doctest: +SKIP
    >>> dataset.class_names  # doctest: +SKIP
    ['BG', 'tumor']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class Dataset:
    """Registry of classes and images, as matterport's `utils.Dataset`.

    Class 0 is always "BG". After adding classes and images call `prepare()`, which assigns
    internal ids (``image_ids``, ``class_ids``) and builds the source-id maps.

    Example:
        >>> ds = Dataset()
        >>> ds.add_class("mias", 1, "tumor")
        >>> ds.add_image("mias", "mdb001", "mdb001.pgm")
        >>> ds.prepare()
        >>> ds.class_names, list(ds.image_ids)
        (['BG', 'tumor'], [0])
    """

    def __init__(self, class_map: dict | None = None) -> None:
        self._image_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self.image_info: list[dict[str, Any]] = []
        self.class_info: list[dict[str, Any]] = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids: dict[str, list[int]] = {}

    def add_class(self, source: str, class_id: int, class_name: str) -> None:
        """Register a class of ``source``; adding the same (source, id) twice is a no-op.

        Raises:
            ValueError: ``source`` contains a dot (it separates source and id in maps).
        """
        if "." in source:
            raise ValueError(f"`source` must not contain a dot, received {source!r}")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source: str, image_id: Any, path: str | None, **kwargs: Any) -> None:
        """Register an image; extra keyword arguments are kept in its ``image_info`` entry."""
        self.image_info.append({"id": image_id, "source": source, "path": path, **kwargs})

    def image_reference(self, image_id: int) -> str:
        """A string that identifies the image (its path), for messages and debugging."""
        return str(self.image_info[image_id].get("path") or "")

    def prepare(self, class_map: dict | None = None) -> None:
        """Assign internal ids and build the maps between internal and source ids."""

        def clean_name(name: str) -> str:
            return ",".join(name.split(",")[:1])

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": i for i, info in enumerate(self.class_info)
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": i for i, info in enumerate(self.image_info)
        }
        self.sources = sorted({i["source"] for i in self.class_info})
        self.source_class_ids = {
            source: [
                i for i, info in enumerate(self.class_info) if i == 0 or info["source"] == source
            ]
            for source in self.sources
        }

    @property
    def image_ids(self) -> np.ndarray:
        """Internal image ids 0..N-1 (after `prepare`)."""
        return self._image_ids

    def map_source_class_id(self, source_class_id: str) -> int:
        """Internal class id of ``"source.id"``, e.g. ``"mias.1"``."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id: int, source: str) -> int:
        """The source's own id of internal class ``class_id``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(
                f"class {class_id} belongs to source {info['source']!r}, not {source!r}"
            )
        return info["id"]

    def source_image_link(self, image_id: int) -> str:
        """Path or URL of the image in its source."""
        return self.image_info[image_id]["path"]

    def load_image(self, image_id: int) -> np.ndarray:
        """The image as uint8 RGB (H, W, 3); grey images are repeated, alpha is dropped."""
        import skimage.io

        image = skimage.io.imread(self.image_info[image_id]["path"])
        return _to_rgb_uint8(image)

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks bool (H, W, N) and int32 class ids (N,); override in subclasses.

        The base class has no annotations and returns empty arrays (with a warning), as
        matterport does.
        """
        logger.warning(
            "Dataset.load_mask is not overridden: image %s has no instances",
            self.image_reference(image_id),
        )
        return np.zeros((0, 0, 0), dtype=bool), np.zeros(0, dtype=np.int32)


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        scale = (
            255.0
            if image.dtype.kind == "f" and image.max(initial=0) <= 1.0
            else (255.0 / max(float(image.max(initial=0)), 1.0))
        )
        image = np.clip(np.round(image.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    elif image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    return image


class RecordDataset(Dataset):
    """A `Dataset` over mammoseg `Record`s: any loaded dataset can train Mask R-CNN.

    Each chosen lesion with a region (a MIAS circle, a CBIS-DDSM ROI mask, a phantom lesion)
    becomes one instance. By default every lesion kind is the single class ``class_name``; with
    ``by_kind=True`` each kind gets its own class.
    """

    @classmethod
    def from_records(
        cls,
        records: Sequence[Any],
        size: int | tuple[int, int] | None = None,
        kinds: Sequence[str] | None = ("mass",),
        class_name: str = "tumor",
        by_kind: bool = False,
        source: str = "mammoseg",
    ) -> RecordDataset:
        """Build and `prepare` a dataset of ``records`` resized to ``size`` (None: own size).

        Raises:
            ValueError: ``records`` is empty.

        Example:
            >>> ds = RecordDataset.from_records(records, size=128)  # doctest: +SKIP
        """
        from mammoseg.data import LESION_KINDS, parse_size

        if len(records) == 0:
            raise ValueError("`records` is empty: nothing to build a dataset from")
        dataset = cls()
        dataset.size = parse_size(size)
        dataset.kinds = tuple(kinds) if kinds is not None else None
        dataset.by_kind = bool(by_kind)
        if by_kind:
            for index, kind in enumerate(dataset.kinds or LESION_KINDS, start=1):
                dataset.add_class(source, index, kind)
        else:
            dataset.add_class(source, 1, class_name)
        for record in records:
            dataset.add_image(source, record.image_id, record.path, record=record)
        dataset.prepare()
        return dataset

    def load_image(self, image_id: int) -> np.ndarray:
        # decoded once: a 1024² PGM resized per training step would cost more than the step
        cache = self.__dict__.setdefault("_image_cache", {})
        if image_id not in cache:
            from mammoseg.data import load_image

            record = self.image_info[image_id]["record"]
            cache[image_id] = _to_rgb_uint8(load_image(record, self.size))
        return cache[image_id].copy()

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        from mammoseg.data import LESION_KINDS, load_instance_masks

        record = self.image_info[image_id]["record"]
        masks = load_instance_masks(record, self.size, self.kinds)
        if not self.by_kind:
            return masks.astype(bool), np.ones(masks.shape[-1], dtype=np.int32)
        chosen = [
            les
            for les in record.lesions
            if les.has_region and (self.kinds is None or les.kind in self.kinds)
        ]
        kinds = list(self.kinds or LESION_KINDS)
        class_ids = np.array([kinds.index(les.kind) + 1 for les in chosen], dtype=np.int32)
        return masks.astype(bool), class_ids
