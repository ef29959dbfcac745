"""`RecordDataset`: matterport's `Dataset` over mammoseg Records, to train Mask R-CNN on them.

matterport's `Dataset` itself lives in ``utils`` (``utils.Dataset``, as in matterport); subclass it
and override `load_mask` as with matterport, or use `RecordDataset` to train on any dataset
mammoseg can load (phantom, MIAS circles, CBIS-DDSM ROI masks).

Example:
    >>> from mammoseg import data
    >>> records = data.load_records("phantom")  # doctest: +SKIP
    >>> dataset = RecordDataset.from_records(records, size=256)  # doctest: +SKIP
    >>> dataset.class_names  # doctest: +SKIP
    ['BG', 'tumor']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mammoseg.models.mask_rcnn.utils import Dataset, to_rgb_uint8


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
            cache[image_id] = to_rgb_uint8(load_image(record, self.size))
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
