"""make_dataset streaming a preprocessing cache: same batches as in memory, flat memory, shards."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from mammoseg.data import pipeline
from mammoseg.data.augment import RotationAugment
from mammoseg.data.cache import (
    CacheReader,
    build_cache,
    build_sharded_cache,
    cache_files,
    read_cache,
)
from mammoseg.data.errors import MammosegDataError
from mammoseg.data.pgm import write_pgm
from mammoseg.data.pipeline import make_dataset
from mammoseg.data.records import Lesion, Record


def synthetic_records(folder, n: int, size: int = 48, per_patient: int = 2) -> list[Record]:
    """``n`` noise images with one circular lesion each (every third a calcification),
    ``per_patient`` images per patient."""
    rng = np.random.default_rng(0)
    records = []
    for k in range(n):
        path = folder / f"img{k:03d}.pgm"
        write_pgm(path, rng.integers(0, 256, (size, size), dtype=np.uint8))
        kind = "calcification" if k % 3 == 2 else "mass"
        lesion = Lesion(kind, center=(size / 2 + k % 7, size / 3), radius=3.0 + k % 4)
        records.append(
            Record(f"img{k:03d}", f"p{k // per_patient:03d}", "mias", str(path), lesions=(lesion,))
        )
    return records


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """20 synthetic records (10 patients), one cache file of 32² and three shards of it."""
    folder = tmp_path_factory.mktemp("streaming")
    records = synthetic_records(folder, 20)
    settings = dict(size=32, resize="stretch", workers=1, progress=False)
    single = build_cache(records, folder / "all.h5", **settings)
    shards = build_sharded_cache(records, folder / "shards", 3, **settings)
    return records, single, shards


def arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(x.numpy(), y.numpy()) for x, y in dataset]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def test_streamed_batches_equal_the_cache_in_order(cached):
    _, path, _ = cached
    streamed = make_dataset(path, None, 6, shuffle=False, streaming=True)
    assert [int(x.shape[0]) for x, _ in streamed] == [6, 6, 6, 2]
    images, masks = arrays(streamed)
    expected_images, expected_masks, _ = read_cache(path, kinds=("mass",))
    # Bit-identical: TF's float32 division by 65535 rounds as NumPy's does in read_cache.
    np.testing.assert_array_equal(images[..., 0], expected_images)
    np.testing.assert_array_equal(masks[..., 0], expected_masks)
    assert masks.sum() > 0 and images.dtype == masks.dtype == np.float32
    in_memory = arrays(make_dataset(path, None, 6, shuffle=False, streaming=False))
    np.testing.assert_array_equal(in_memory[0], images)
    np.testing.assert_array_equal(in_memory[1], masks)


def test_shuffled_streaming_equals_in_memory_and_is_a_permutation(cached):
    _, path, _ = cached
    streamed = make_dataset(path, None, 4, seed=3, streaming=True)
    in_memory = make_dataset(path, None, 4, seed=3, streaming=False)
    first, second = arrays(streamed), arrays(streamed)  # two epochs
    np.testing.assert_array_equal(first[0], arrays(in_memory)[0])  # same order, by design
    images, _, _ = read_cache(path)
    order = [int(np.flatnonzero((images == x[..., 0]).all(axis=(1, 2)))[0]) for x in first[0]]
    assert sorted(order) == list(range(20)) and order != list(range(20))
    assert not np.array_equal(first[0], second[0])  # reshuffled every epoch


def test_kinds_recompute_the_streamed_masks(cached):
    _, path, _ = cached
    _, every_kind, _ = read_cache(path, kinds=None)
    _, masses, _ = read_cache(path)
    assert every_kind.sum() > masses.sum()  # calcifications only in the first
    streamed = arrays(make_dataset(path, None, 8, shuffle=False, kinds=None, streaming=True))[1]
    np.testing.assert_array_equal(streamed[..., 0], every_kind)


def test_augmentation_applies_when_streaming(cached):
    _, path, _ = cached
    augment = RotationAugment(rotation_range=360, fill_mode="constant")
    plain = arrays(make_dataset(path, None, 10, shuffle=False, streaming=True))
    rotated = arrays(make_dataset(path, None, 10, shuffle=False, augment=augment, streaming=True))
    reference = make_dataset(path, None, 10, shuffle=False, augment=augment, streaming=False)
    np.testing.assert_array_equal(rotated[0], arrays(reference)[0])
    changed = [not np.array_equal(a, b) for a, b in zip(plain[0], rotated[0])]
    assert sum(changed) >= 18
    assert set(np.unique(rotated[1])) <= {0.0, 1.0}


def test_streaming_never_holds_the_whole_cache(tmp_path):
    """Peak traced (NumPy) memory while iterating stays far below the dataset's size; the
    in-memory path, measured the same way, holds all of it (so the measurement can fail)."""
    records = synthetic_records(tmp_path, 48, size=192, per_patient=1)
    path = build_cache(records, tmp_path / "c.h5", size=192, workers=1, progress=False)
    whole = 48 * 192 * 192 * (2 + 1)  # uint16 images + uint8 masks: 5.3 MB
    for _ in make_dataset(path, None, 2, streaming=True).take(1):
        pass  # first use: imports and tracing (about 1.5 MB of Python objects) not counted

    def peak(streaming: bool) -> int:
        tracemalloc.start()
        try:
            for _ in make_dataset(path, None, 2, seed=0, streaming=streaming):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    streamed = peak(True)  # measured: about 0.6 MB (a few batches of 2 in flight)
    assert streamed < whole / 4, f"streaming peaked at {streamed} bytes for {whole}"
    assert peak(False) > whole


def test_auto_streams_above_the_in_memory_limit(cached, monkeypatch):
    _, path, _ = cached

    def refuse(self):
        raise AssertionError("read whole")

    assert CacheReader(path).nbytes == 20 * 32 * 32 * 3
    monkeypatch.setattr(pipeline, "IN_MEMORY_MAX_BYTES", 20 * 32 * 32 * 3 - 1)
    monkeypatch.setattr(CacheReader, "read_all", refuse)
    assert len(arrays(make_dataset(path, None, 8, shuffle=False))[0]) == 20  # streamed
    monkeypatch.setattr(pipeline, "IN_MEMORY_MAX_BYTES", 20 * 32 * 32 * 3)
    with pytest.raises(AssertionError, match="read whole"):
        make_dataset(path, None, 8, shuffle=False)


def test_a_damaged_chunk_names_the_image_when_streamed(cached, tmp_path):
    import shutil

    from tests.data.test_cache import _corrupt_chunk

    _, path, _ = cached
    copy = shutil.copy(path, tmp_path / "damaged.h5")
    _corrupt_chunk(copy, "images", 5)
    dataset = make_dataset(copy, None, 4, shuffle=False, streaming=True)
    with pytest.raises(tf.errors.OpError, match=r"damaged cache: images of image 5 \(img005\)"):
        arrays(dataset)


# --------------------------------------------------------------------------- shards


def test_shards_split_by_patient_and_balance(cached):
    records, _, shards = cached
    assert [p.name for p in shards] == [f"shard-0000{i}-of-00003.h5" for i in range(3)]
    held = [read_cache(path)[2] for path in shards]
    patients = [{r.patient_id for r in part} for part in held]
    assert all(not a & b for i, a in enumerate(patients) for b in patients[i + 1 :])
    assert sorted(r.image_id for part in held for r in part) == [r.image_id for r in records]
    assert sorted(len(part) for part in held) == [6, 6, 8]  # 10 patients of 2: 3, 3, 4


def test_a_folder_of_shards_streams_round_robin(cached):
    _, path, shards = cached
    assert cache_files(shards[0].parent) == shards
    per_shard = [read_cache(p)[0] for p in shards]
    expected = [part[i] for i in range(8) for part in per_shard if i < len(part)]
    streamed = arrays(make_dataset(shards[0].parent, None, 7, shuffle=False, streaming=True))
    np.testing.assert_array_equal(streamed[0][..., 0], np.stack(expected))
    in_memory = arrays(make_dataset(shards, None, 7, shuffle=False, streaming=False))
    np.testing.assert_array_equal(in_memory[0], streamed[0])
    np.testing.assert_array_equal(in_memory[1], streamed[1])


def test_each_input_pipeline_reads_its_own_shards(cached):
    _, path, shards = cached
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(2, pipeline_id, 1)
        dataset = make_dataset(shards, None, 4, shuffle=False, input_context=context)
        options = dataset.options().experimental_distribute.auto_shard_policy
        assert options == tf.data.experimental.AutoShardPolicy.OFF
        seen.append(arrays(dataset)[0][..., 0])
    # Pipeline 0 reads shards 0 and 2, pipeline 1 shard 1: every image exactly once.
    assert [len(s) for s in seen] == [14, 6]
    everything, _, _ = read_cache(path)
    together = np.concatenate(seen)
    matches = [int(np.flatnonzero((everything == x).all(axis=(1, 2)))[0]) for x in together]
    assert sorted(matches) == list(range(20))


# --------------------------------------------------------------------------- invalid


def test_invalid_streaming_and_too_few_shards(cached, tmp_path):
    _, path, shards = cached
    with pytest.raises(ValueError, match="`streaming` must be one of .*received 'yes'"):
        make_dataset(path, None, 2, streaming="yes")
    context = tf.distribute.InputContext(4, 0, 1)
    with pytest.raises(ValueError, match="3 cache file.* for 4 input pipelines"):
        make_dataset(shards, None, 2, input_context=context)
    with pytest.raises(ValueError, match=r"`size` 64 differs from the cache's \(32, 32\)"):
        make_dataset(path, 64, 2)
    with pytest.raises(MammosegDataError, match=r"no cache files \(\*\.h5\) in this folder"):
        make_dataset(tmp_path, None, 2)
