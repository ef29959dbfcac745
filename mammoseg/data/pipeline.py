"""tf.data input pipeline: records (or a preprocessing cache) → batches of (image, mask).

Images are decoded and resized once, held in memory as float32, and served by tf.data with
shuffling, batch-level augmentation in a parallel map, and prefetching, so the input side is
never what a training step waits for (see benchmarks/bench_pipeline.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from mammoseg.checks import check_positive_int
from mammoseg.data.augment import RotationAugment
from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import Record, Size, load_image, load_mask, parse_size


def decode_records(
    records: Sequence[Record],
    size: Size,
    kinds: Sequence[str] | None = ("mass",),
    workers: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and resize every record once → (images float32 (N, H, W), masks uint8 (N, H, W)).

    Decoding runs in a thread pool (the readers spend their time in NumPy, which releases
    the GIL).
    """
    target = parse_size(size)
    if not records:
        raise MammosegDataError("empty dataset: no records to decode")
    images = np.empty((len(records), *target), np.float32)
    masks = np.empty((len(records), *target), np.uint8)

    def work(index: int) -> None:
        images[index] = load_image(records[index], target)
        masks[index] = load_mask(records[index], target, kinds)

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        jobs = pool.map(work, range(len(records)))
        for _ in tqdm(jobs, total=len(records), desc="decoding images", disable=not progress):
            pass
    return images, masks


def make_dataset(
    records: Sequence[Record] | str | os.PathLike,
    size: Size | None,
    batch_size: int,
    *,
    augment: RotationAugment | Callable | None = None,
    shuffle: bool = True,
    seed: int = 0,
    kinds: Sequence[str] | None = ("mass",),
    repeat: bool = False,
    drop_remainder: bool = False,
    progress: bool = True,
) -> tf.data.Dataset:
    """A `tf.data.Dataset` of (image (B, H, W, 1) float32, mask (B, H, W, 1) float32) batches.

    Decodes ``records`` (or reads a preprocessing cache), then serves the images with
    `dataset_from_arrays`; call that directly for images already decoded.

    Args:
        records: the records, or the path of a preprocessing cache built by
            `mammoseg.data.cache.build_cache` (then ``size`` must be None or the cache's size).
        size: int (square) or (height, width) to resize to.
        batch_size: images per batch.
        augment, shuffle, seed, repeat, drop_remainder: as `dataset_from_arrays`.
        kinds: lesion kinds drawn in the masks (None: every kind).
        progress: show a progress bar while decoding.

    Returns:
        The dataset, prefetched.

    Raises:
        ValueError: invalid ``batch_size``, ``size`` or ``augment``.
        MammosegDataError: no records, or a file that cannot be read.

    Example:
        >>> ds = make_dataset(train, size=256, batch_size=8,  # doctest: +SKIP
        ...                   augment=RotationAugment(rotation_range=360))
        >>> images, masks = next(iter(ds))  # doctest: +SKIP
        >>> images.shape  # doctest: +SKIP
        TensorShape([8, 256, 256, 1])
    """
    check_positive_int("batch_size", batch_size)
    _check_augment(augment)
    if isinstance(records, (str, os.PathLike)):
        from mammoseg.data.cache import read_cache

        images, masks, _ = read_cache(Path(records), kinds=kinds)
        target = parse_size(size)
        if target is not None and tuple(images.shape[1:3]) != target:
            raise ValueError(
                f"`size` {size!r} differs from the cache's {tuple(images.shape[1:3])}; "
                "rebuild the cache at that size or pass size=None"
            )
    else:
        if size is None:
            raise ValueError("`size` is required when building a dataset from records")
        images, masks = decode_records(records, size, kinds, progress=progress)
    return dataset_from_arrays(
        images,
        masks,
        batch_size,
        augment=augment,
        shuffle=shuffle,
        seed=seed,
        repeat=repeat,
        drop_remainder=drop_remainder,
    )


def _check_augment(augment: object) -> None:
    if augment is not None and not callable(augment) and not isinstance(augment, RotationAugment):
        raise TypeError(
            "`augment` must be a RotationAugment, a Keras layer or a callable mapping "
            f"(image, mask) batches, or None; received {augment!r}"
        )


def _augment_fn(augment: object, seed: int) -> Callable:
    """How one batch of (images, masks) goes through ``augment``, whatever kind it is."""
    if isinstance(augment, RotationAugment):
        return lambda batch, s: augment.apply(batch[0], batch[1], s)
    import keras

    if isinstance(augment, keras.layers.Layer):
        # Keras 3 preprocessing layers take a dict and transform the masks to match.
        def through_layer(batch, _):
            out = augment({"images": batch[0], "segmentation_masks": batch[1]})
            return out["images"], out["segmentation_masks"]

        return through_layer
    return lambda batch, _: tuple(augment(batch[0], batch[1]))


def dataset_from_arrays(
    images: np.ndarray,
    masks: np.ndarray,
    batch_size: int,
    *,
    augment: RotationAugment | Callable | None = None,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of (image, mask) served from decoded arrays held in memory.

    Args:
        images: (N, H, W) float32 images, e.g. from `decode_records`.
        masks: (N, H, W) binary masks.
        batch_size: images per batch.
        augment: applied to each training batch: a `RotationAugment` (seeded from ``seed``,
            new draws every epoch), a Keras preprocessing layer (called on a dict with
            ``images`` and ``segmentation_masks``, e.g. ``keras.layers.RandomFlip``), any
            callable mapping ``(images, masks)`` to ``(images, masks)``, or None.
        shuffle: reshuffle every epoch (deterministic for a ``seed``).
        seed: seed of the shuffle and of the augmentation.
        repeat: repeat forever (then pass ``steps_per_epoch`` to `fit`).
        drop_remainder: drop the last, smaller batch (needed by some distribution strategies).

    Returns:
        The dataset of (B, H, W, 1) float32 pairs, prefetched.

    Raises:
        ValueError: invalid ``batch_size``, or images and masks that do not pair up.
        MammosegDataError: no images.

    Example:
        >>> images, masks = np.zeros((3, 8, 8), np.float32), np.zeros((3, 8, 8), np.uint8)
        >>> x, y = next(iter(dataset_from_arrays(images, masks, 2, shuffle=False)))
        >>> tuple(x.shape), tuple(y.shape)
        ((2, 8, 8, 1), (2, 8, 8, 1))
    """
    check_positive_int("batch_size", batch_size)
    _check_augment(augment)
    if len(images) == 0:
        raise MammosegDataError("empty dataset: no images")
    if np.shape(images)[:3] != np.shape(masks)[:3] or np.ndim(images) != 3:
        raise ValueError(
            f"`images` and `masks` must both be (N, H, W), received {np.shape(images)} and "
            f"{np.shape(masks)}"
        )

    # Only indices flow through shuffle and batch; each batch is gathered from the arrays held
    # in memory. Embedding the arrays as tensors would copy them into the graph (and break
    # past 2 GB), and shuffling whole images through a buffer would copy every image again.
    images = np.ascontiguousarray(images, dtype=np.float32)
    masks = np.ascontiguousarray(masks, dtype=np.uint8)
    height, width = images.shape[1:3]

    def gather(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.sort(index) if not shuffle else index
        return images[index][..., None], masks[index][..., None].astype(np.float32)

    def load(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask = tf.numpy_function(gather, [index], [tf.float32, tf.float32])
        static_batch = batch_size if drop_remainder else None
        image.set_shape([static_batch, height, width, 1])
        mask.set_shape([static_batch, height, width, 1])
        return image, mask

    data = tf.data.Dataset.range(len(images))
    if shuffle:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    data = data.batch(batch_size, drop_remainder=drop_remainder)
    data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        # New seeds every epoch (Keras iterates the dataset afresh each epoch).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        data = tf.data.Dataset.zip((data, seeds)).map(
            _augment_fn(augment, seed),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    # tf.data runs its functions with intra-op parallelism 1 by default; the image transform
    # is one big op per batch and scales with cores (about 1.6x faster at 1024² on 2 cores).
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = os.cpu_count() or 1
    return data.with_options(options).prefetch(tf.data.AUTOTUNE)


__all__ = ["dataset_from_arrays", "decode_records", "make_dataset"]
