"""tf.data input pipeline: records (or a preprocessing cache) → batches of (image, mask).

Records are decoded and resized once, held in memory as float32, and served by tf.data with
shuffling, batch-level augmentation in a parallel map, and prefetching, so the input side is
never what a training step waits for (see benchmarks/bench_pipeline.py). A preprocessing
cache is streamed from its file(s) by default, a batch of chunks at a time, so memory stays
flat however many images it holds (benchmarks/bench_streaming.py); its shards split the work
between the workers of a multi-worker strategy (`distributed_dataset`).
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
from mammoseg.data.cache import IMAGE_DTYPES, CacheReader, cache_files
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


# A cache whose stored images and masks take at most this many bytes is read whole into
# memory by make_dataset(streaming="auto"); a larger one is streamed. 256 MiB is 85 images at
# 1024² (uint16 images + uint8 masks) or 1,365 at 256²: the in-memory path saves the per-batch
# file reads, which only matters when a file's pages are not yet in the OS cache, and its
# start-up read of the whole file is under a second below this size (benchmarks/README.md).
IN_MEMORY_MAX_BYTES = 256 << 20

STREAMING_MODES = ("auto", True, False)


def make_dataset(
    records: Sequence[Record] | str | os.PathLike | Sequence[str | os.PathLike],
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
    streaming: bool | str = "auto",
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """A `tf.data.Dataset` of (image (B, H, W, 1) float32, mask (B, H, W, 1) float32) batches.

    From records: decodes them all into memory, then serves them with `dataset_from_arrays`.
    From a preprocessing cache (a file, a folder of shards or a list of shard files built by
    `mammoseg.data.cache.build_cache` / `build_sharded_cache`): streams it, reading each
    batch's images from the file(s) in a parallel map (one chunk per image, checksummed),
    converting them to float32 on the fly, with prefetch; memory does not grow with the
    number of images. Only image *indices* are shuffled (all of them at once: 16 bytes an
    image), so streamed and in-memory batches are the same, in the same order.

    The order without shuffling is the shards' round robin: image 0 of every shard, then
    image 1 of every shard, ... (one file: the file's order).

    Args:
        records: the records, or a cache: a file, a folder of ``*.h5`` shards, or a list of
            shard files (then ``size`` must be None or the cache's size).
        size: int (square) or (height, width) to resize to.
        batch_size: images per batch (per worker when ``input_context`` is given: use
            ``input_context.get_per_replica_batch_size(global_batch)``).
        augment, shuffle, seed, repeat, drop_remainder: as `dataset_from_arrays`.
        kinds: lesion kinds drawn in the masks (None: every kind).
        progress: show a progress bar while decoding records.
        streaming: for a cache: "auto" (default) streams unless the stored images and
            masks of the shards this worker reads fit in `IN_MEMORY_MAX_BYTES` (256 MiB),
            True always streams, False reads them whole into memory first.
        input_context: from `tf.distribute.Strategy.distribute_datasets_from_function`: this
            worker reads only its own shard files (file ``i`` goes to input pipeline
            ``i % num_input_pipelines``), and tf.data's auto-sharding is turned off. With a
            single cache file every worker would get it whole: give at least one shard per
            worker. See `distributed_dataset`.

    Returns:
        The dataset, prefetched.

    Raises:
        ValueError: invalid ``batch_size``, ``size``, ``augment`` or ``streaming``; fewer
            shard files than input pipelines.
        MammosegDataError: no records, a file that cannot be read, a damaged cache chunk
            (when its batch is read, naming the image).

    Example:
        >>> ds = make_dataset(train, size=256, batch_size=8,  # doctest: +SKIP
        ...                   augment=RotationAugment(rotation_range=360))
        >>> images, masks = next(iter(ds))  # doctest: +SKIP
        >>> images.shape  # doctest: +SKIP
        TensorShape([8, 256, 256, 1])
        >>> ds = make_dataset("cbis-1024/", None, batch_size=8)  # doctest: +SKIP
    """
    check_positive_int("batch_size", batch_size)
    _check_augment(augment)
    if not (isinstance(streaming, bool) or streaming == "auto"):
        raise ValueError(f"`streaming` must be one of {STREAMING_MODES}, received {streaming!r}")
    options = dict(augment=augment, shuffle=shuffle, seed=seed, repeat=repeat)
    if _is_cache_source(records):
        return _cache_dataset(
            cache_files(records),
            size,
            batch_size,
            kinds=kinds,
            drop_remainder=drop_remainder,
            streaming=streaming,
            input_context=input_context,
            **options,
        )
    if size is None:
        raise ValueError("`size` is required when building a dataset from records")
    images, masks = decode_records(records, size, kinds, progress=progress)
    return dataset_from_arrays(images, masks, batch_size, drop_remainder=drop_remainder, **options)


def distributed_dataset(
    strategy: tf.distribute.Strategy,
    source: str | os.PathLike | Sequence[str | os.PathLike],
    global_batch_size: int,
    **options,
):
    """A cache streamed under ``strategy``, each worker reading its own shard files.

    `make_dataset` called once per input pipeline through
    ``strategy.distribute_datasets_from_function``, with the per-replica batch size; give
    `keras.Model.fit` the result as is. tf.data cannot auto-shard an HDF5 cache by file (its
    FILE policy only recognises TensorFlow's own readers, TFRecord and text files: "Found an
    unshardable source dataset"), so the sharding is done here, by file, and exact.

    Args:
        strategy: e.g. `tf.distribute.MultiWorkerMirroredStrategy()`.
        source: a folder of shards or a list of shard files (at least one per worker).
        global_batch_size: images per step summed over every replica of every worker.
        **options: `make_dataset`'s keyword arguments (shuffle, seed, augment, ...).

    Returns:
        A distributed dataset of (image, mask) batches.

    Example:
        >>> strategy = tf.distribute.MultiWorkerMirroredStrategy()  # doctest: +SKIP
        >>> data = distributed_dataset(strategy, "cbis-1024/", 16)  # doctest: +SKIP
        >>> model.fit(data, epochs=10)  # doctest: +SKIP
    """
    check_positive_int("global_batch_size", global_batch_size)

    def per_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch = context.get_per_replica_batch_size(global_batch_size)
        return make_dataset(source, None, batch, input_context=context, **options)

    return strategy.distribute_datasets_from_function(per_pipeline)


def _is_cache_source(source: object) -> bool:
    """A path, or a non-empty list of paths (not of records)."""
    if isinstance(source, (str, os.PathLike)):
        return True
    return (
        isinstance(source, Sequence)
        and len(source) > 0
        and all(isinstance(item, (str, os.PathLike)) for item in source)
    )


def _cache_dataset(
    files: list[Path],
    size: Size | None,
    batch_size: int,
    *,
    augment,
    shuffle: bool,
    seed: int,
    kinds,
    repeat: bool,
    drop_remainder: bool,
    streaming: bool | str,
    input_context: tf.distribute.InputContext | None,
) -> tf.data.Dataset:
    """The cache pipeline: shard files → (file, index) pairs → shuffle → batch → read → float32."""
    # === this worker's files, opened and checked ===
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) < pipelines:
            raise ValueError(
                f"{len(files)} cache file(s) for {pipelines} input pipelines: write at least "
                "one shard per worker (build_sharded_cache)"
            )
        files = files[pipeline_id::pipelines]  # what Dataset.shard(pipelines, pipeline_id) keeps
    readers = [CacheReader(path, kinds=kinds) for path in files]
    height, width = readers[0].size
    stored = readers[0].image_dtype
    for reader in readers[1:]:
        if reader.size != (height, width) or reader.image_dtype != stored:
            raise MammosegDataError(
                f"shard of size {reader.size} and {reader.image_dtype} beside "
                f"{files[0]} of {(height, width)} and {stored}",
                path=reader.path,
            )
    target = parse_size(size)
    if target is not None and target != (height, width):
        raise ValueError(
            f"`size` {size!r} differs from the cache's {(height, width)}; "
            "rebuild the cache at that size or pass size=None"
        )
    in_memory = streaming is False or (
        streaming == "auto" and sum(r.nbytes for r in readers) <= IN_MEMORY_MAX_BYTES
    )

    # === indices: round robin over the files, shuffled whole (indices are tiny) ===
    counts = [len(reader) for reader in readers]
    pairs = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(readers), dtype=tf.int64), tf.constant(counts, tf.int64))
    )
    pairs = pairs.interleave(
        lambda file, count: tf.data.Dataset.range(count).map(lambda index: (file, index)),
        cycle_length=len(readers),
        block_length=1,
    )
    if shuffle:
        pairs = pairs.shuffle(sum(counts), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        pairs = pairs.repeat()
    pairs = pairs.batch(batch_size, drop_remainder=drop_remainder)

    # === read each batch (from memory or the files) as stored, then float32 ===
    if in_memory:
        arrays = [reader.read_all() for reader in readers]
        for reader in readers:
            reader.close()

        def read(file: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            images = np.empty((len(index), height, width), stored)
            masks = np.empty((len(index), height, width), np.uint8)
            for k, (f, i) in enumerate(zip(file, index)):
                images[k], masks[k] = arrays[f][0][i], arrays[f][1][i]
            return images, masks

    else:

        def read(file: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            images = np.empty((len(index), height, width), stored)
            masks = np.empty((len(index), height, width), np.uint8)
            for k, (f, i) in enumerate(zip(file, index)):
                readers[f].read_into(int(i), images[k], masks[k])
            return images, masks

    scale = IMAGE_DTYPES[stored.name]
    static_batch = batch_size if drop_remainder else None

    def load(file: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images, masks = tf.numpy_function(read, [file, index], [tf.as_dtype(stored), tf.uint8])
        images = tf.cast(images, tf.float32)
        if scale != 1.0:  # correctly rounded, as mammoseg.data.cache.from_stored
            images = images / scale
        images = tf.ensure_shape(images[..., None], [static_batch, height, width, 1])
        masks = tf.ensure_shape(tf.cast(masks, tf.float32)[..., None], images.shape)
        return images, masks

    data = pairs.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    data = _finish(data, augment, seed)
    if input_context is not None:  # already sharded by file, above
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        data = data.with_options(options)
    return data


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
    return _finish(data, augment, seed)


def _finish(data: tf.data.Dataset, augment, seed: int) -> tf.data.Dataset:
    """Augment the batches of ``data`` (seeded per batch, new draws every epoch), prefetch."""
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


__all__ = [
    "IN_MEMORY_MAX_BYTES",
    "dataset_from_arrays",
    "decode_records",
    "distributed_dataset",
    "make_dataset",
]
