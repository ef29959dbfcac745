"""Preprocessing cache: resampling, masks that never vanish, resume after a kill, staleness."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mammoseg.data import MammosegDataError, load_image, load_mask, load_records
from mammoseg.data import cache as cache_module
from mammoseg.data.cache import (
    build_cache,
    read_cache,
    read_instance_masks,
    read_transforms,
)
from mammoseg.data.mias import read_mias
from mammoseg.data.phantom import generate
from mammoseg.data.phantom_cbis import write_cbis_phantom

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cbis_records(tmp_path_factory):
    root = write_cbis_phantom(tmp_path_factory.mktemp("cbis"), 10, seed=2, size=200, progress=False)
    return load_records("cbis-ddsm", root)


@pytest.fixture(scope="module")
def mias_records(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("mias"), n_images=6, seed=4, size=256, progress=False)
    return read_mias(root)


# --------------------------------------------------------------------------- building


def test_cbis_cache_matches_direct_reads(tmp_path, cbis_records):
    path = build_cache(cbis_records, tmp_path / "c.h5", size=100, resize="stretch", kinds=None)
    assert path == tmp_path / "c.h5" and not (tmp_path / "c.h5.part").exists()
    images, masks, records = read_cache(path)
    assert images.shape == (len(cbis_records), 100, 100) and images.dtype == np.float32
    assert masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1}
    for index in (0, 3):
        direct = load_image(cbis_records[index], 100)  # skimage anti-aliased resize
        assert np.abs(images[index] - direct).mean() < 0.01
        truth = load_mask(cbis_records[index], 100, kinds=None)
        overlap = (truth & masks[index]).sum() / max((truth | masks[index]).sum(), 1)
        assert overlap > 0.8
    assert all(m.any() for m in masks)  # every CBIS image has a lesion; none vanished
    for before, after in zip(cbis_records, records):
        assert after.image_id == before.image_id and after.path == before.path
        for lesion in after.lesions:
            assert lesion.center is not None and lesion.radius > 0  # measured on the mask
    assert read_instance_masks(path, 0).shape == (len(records[0].lesions), 100, 100)


def test_pad_cache_stores_the_transform(tmp_path, cbis_records):
    path = build_cache(cbis_records[:3], tmp_path / "p.h5", size=(64, 64), resize="pad")
    images, _, records = read_cache(path)
    transforms = read_transforms(path)
    for image, record, (height, width, sy, sx, oy, ox) in zip(images, records, transforms):
        assert (height, width) == record.shape and sy == pytest.approx(sx, rel=0.02)
        assert oy == 0 and ox > 0 and image[:, : int(ox)].max() == 0.0  # black side padding


def test_mias_circles_match_load_mask(tmp_path, mias_records):
    path = build_cache(mias_records, tmp_path / "m.h5", size=128, resize="stretch")
    images, masks, records = read_cache(path)
    for index, record in enumerate(mias_records):
        # uint16 storage: within half a step of 1/65535 (7.6e-6) of the float value.
        np.testing.assert_allclose(images[index], load_image(record, 128), atol=8e-6)
        np.testing.assert_array_equal(masks[index], load_mask(record, 128))
    assert records == mias_records  # circles keep their own centre and radius
    _, every_kind, _ = read_cache(path, kinds=None)
    assert (every_kind >= masks).all()


def test_process_pool_gives_the_same_cache(tmp_path, cbis_records):
    one = build_cache(cbis_records, tmp_path / "one.h5", size=64, workers=1, progress=False)
    two = build_cache(cbis_records, tmp_path / "two.h5", size=64, workers=2, progress=False)
    for a, b in zip(read_cache(one), read_cache(two)):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b


# --------------------------------------------------------------------------- faults


def test_interrupted_build_resumes(tmp_path, cbis_records, monkeypatch):
    reference = read_cache(build_cache(cbis_records, tmp_path / "ref.h5", size=64, workers=1))
    calls = []
    real = cache_module._process

    def failing(record, *args):
        if len(calls) == 4:
            raise RuntimeError("injected fault")
        calls.append(record.image_id)
        return real(record, *args)

    monkeypatch.setattr(cache_module, "_process", failing)
    with pytest.raises(RuntimeError, match="injected fault"):
        build_cache(cbis_records, tmp_path / "c.h5", size=64, workers=1)
    assert (tmp_path / "c.h5.part").exists() and not (tmp_path / "c.h5").exists()
    with pytest.raises(MammosegDataError, match="incomplete .* run build_cache again"):
        read_cache(tmp_path / "c.h5")
    done = list(calls)
    monkeypatch.setattr(
        cache_module, "_process", lambda r, *a: calls.append(r.image_id) or real(r, *a)
    )
    build_cache(cbis_records, tmp_path / "c.h5", size=64, workers=1)
    assert len(calls) == len(cbis_records) and not set(done) & set(calls[4:])
    for a, b in zip(reference, read_cache(tmp_path / "c.h5")):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b


def test_killed_build_resumes(tmp_path, cbis_records):
    """SIGKILL a build after 3 images (no clean-up at all), then resume in this process."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from mammoseg.data import cache, load_records
        records = load_records("cbis-ddsm", {str(Path(cbis_records[0].path).parents[3])!r})
        real, seen = cache._process, []
        def dying(record, *args):
            if len(seen) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            seen.append(record)
            return real(record, *args)
        cache._process = dying
        cache.build_cache(records, {str(tmp_path / "k.h5")!r}, size=64, workers=1, progress=False)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    part = tmp_path / "k.h5.part"
    import h5py

    with h5py.File(part, "r") as handle:
        assert handle["done"][...].sum() == 3
    build_cache(cbis_records, tmp_path / "k.h5", size=64, workers=1, progress=False)
    reference = build_cache(cbis_records, tmp_path / "ref.h5", size=64, workers=1, progress=False)
    for a, b in zip(read_cache(reference), read_cache(tmp_path / "k.h5")):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


def test_stale_cache_is_rebuilt_not_used(tmp_path, mias_records, monkeypatch):
    path = build_cache(mias_records, tmp_path / "s.h5", size=64, resize="stretch")
    reference = read_cache(path)
    stamp = path.stat().st_mtime_ns
    assert build_cache(mias_records, path, size=64, resize="stretch") == path
    assert path.stat().st_mtime_ns == stamp  # up to date: reused as is
    source = Path(mias_records[2].path)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    with pytest.raises(MammosegDataError, match="stale cache: the source files of 1 image"):
        read_cache(path)
    calls = []
    real = cache_module._process
    monkeypatch.setattr(cache_module, "_process", lambda r, *a: calls.append(r) or real(r, *a))
    with pytest.warns(UserWarning, match="stale cache, re-caching 1 image.* mdb003"):
        build_cache(mias_records, path, size=64, resize="stretch")
    assert [r.image_id for r in calls] == ["mdb003"]  # only the changed image is decoded again
    for a, b in zip(reference, read_cache(path)):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="stale cache, rebuilding: resize was 'stretch'"):
        build_cache(mias_records, path, size=64, resize="pad")
    assert len(calls) == 1 + len(mias_records)


def test_invalid_arguments_and_files(tmp_path, mias_records):
    with pytest.raises(ValueError, match="`resize` must be one of"):
        build_cache(mias_records, tmp_path / "a.h5", resize="crop")
    with pytest.raises(ValueError, match="`kinds` must be drawn from"):
        build_cache(mias_records, tmp_path / "a.h5", kinds=("tumour",))
    with pytest.raises(ValueError, match="`records` is empty"):
        build_cache([], tmp_path / "a.h5")
    with pytest.raises(MammosegDataError, match="a.h5: cache file not found"):
        read_cache(tmp_path / "a.h5")
    (tmp_path / "b.h5").write_text("not hdf5")
    with pytest.raises(MammosegDataError, match="b.h5: not a mammoseg cache"):
        read_cache(tmp_path / "b.h5")
    from dataclasses import replace

    gone = [replace(mias_records[0], path=str(tmp_path / "gone.pgm"))]
    with pytest.raises(MammosegDataError, match="1 source file.* not found: .*gone.pgm"):
        build_cache(gone, tmp_path / "c.h5")


def test_pipeline_reads_the_cache(tmp_path, cbis_records):
    pipeline = pytest.importorskip("mammoseg.data.pipeline")
    path = build_cache(cbis_records, tmp_path / "t.h5", size=32, kinds=None, progress=False)
    batches = list(pipeline.make_dataset(path, None, batch_size=4, shuffle=False, progress=False))
    images, masks = batches[0]
    assert images.shape == (4, 32, 32, 1) and masks.shape == (4, 32, 32, 1)
    cached_images, cached_masks, _ = read_cache(path)
    np.testing.assert_array_equal(images.numpy()[..., 0], cached_images[:4])
    assert sum(int(b[0].shape[0]) for b in batches) == len(cbis_records)


def test_real_jpeg2000_mammogram_cache(tmp_path):
    source = REPO.parent / "shared" / "data" / "dicom" / "nema" / "MG1_J2KI"
    if not source.is_file():
        pytest.skip(f"real DICOM {source} not found")
    from mammoseg.data import Record

    record = Record("MG1_J2KI", "nema", "nema", str(source), laterality="L", view="MLO")
    path = build_cache([record], tmp_path / "nema.h5", size=256, resize="pad", progress=False)
    images, masks, _ = read_cache(path)
    height, width, sy, sx, oy, ox = read_transforms(path)[0]
    assert (height, width, oy, ox) == (4664, 3064, 0, 44)  # 256 x 168 centred: 44 px each side
    inner = images[0, :, 44:212]
    # Area averaging keeps the mean brightness (1610.84 / 4095 over the whole film).
    assert inner.mean() == pytest.approx(1610.8409 / 4095, abs=2e-3)
    assert images[0, :, :44].max() == 0 and not masks.any()


@pytest.mark.slow
def test_real_scale_phantom_end_to_end(tmp_path):
    """One mammogram at the real CBIS scale (long side 4000) → 1024² cache → tf.data."""
    root = write_cbis_phantom(tmp_path / "cbis", 1, seed=0, size=None, progress=False)
    records = load_records("cbis-ddsm", root)
    assert records[0].shape[0] == 4000
    path = build_cache(records, tmp_path / "big.h5", size=1024, resize="stretch", kinds=None)
    images, masks, cached = read_cache(path)
    assert images.shape == (len(records), 1024, 1024) and masks[0].any()
    lesion = cached[0].lesions[0]
    row, col = lesion.center
    assert masks[0][int(row * 1024 / 4000), int(col * 1024 / records[0].shape[1])] == 1
    pipeline = pytest.importorskip("mammoseg.data.pipeline")
    image, mask = next(iter(pipeline.make_dataset(path, None, batch_size=1, progress=False)))
    assert image.shape == (1, 1024, 1024, 1) and float(mask.numpy().sum()) > 0


def _corrupt_chunk(path, name, index):
    """Flip bytes inside the stored chunk of image ``index`` of dataset ``name``."""
    import h5py

    with h5py.File(path, "r") as handle:
        dataset = handle[name]
        info = dataset.id.get_chunk_info_by_coord((index,) + (0,) * (dataset.ndim - 1))
    with open(path, "r+b") as handle:
        handle.seek(info.byte_offset + 100)
        handle.write(b"\xff\x00\xff\x00" * 4)


@pytest.mark.parametrize("name", ["images", "masks"])
def test_damaged_chunk_names_the_image(tmp_path, mias_records, name):
    path = build_cache(mias_records[:3], tmp_path / "m.h5", size=64, workers=1, progress=False)
    _corrupt_chunk(path, name, 1)
    with pytest.raises(MammosegDataError) as info:
        read_cache(path)
    message = str(info.value)
    assert f"damaged cache: {name} of image 1 ({mias_records[1].image_id}) fails its checksum" in (
        message
    )
    assert "m.h5" in message


@pytest.mark.parametrize(
    "kinds, message",
    [
        (["mass", "tumour"], r"`kinds` must be 'built', None or drawn from .*\['tumour'\]"),
        ("masses", r"received \['masses'\]"),
    ],
)
def test_read_cache_rejects_unknown_kind(tmp_path, mias_records, kinds, message):
    path = build_cache(mias_records[:2], tmp_path / "m.h5", size=64, workers=1, progress=False)
    with pytest.raises(ValueError, match=message):
        read_cache(path, kinds=kinds)


def _assert_same_cache(reference, path):
    for a, b in zip(reference, read_cache(path)):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b


_PROCESS = cache_module._process  # the real one, whatever a test patched in since


def _count_processed(monkeypatch) -> list[str]:
    """Record the image id of every image `build_cache` decodes from here on."""
    calls: list[str] = []
    monkeypatch.setattr(
        cache_module, "_process", lambda r, *a: calls.append(r.image_id) or _PROCESS(r, *a)
    )
    return calls


@pytest.mark.parametrize("name, row", [("images", 1), ("masks", 1), ("instance_masks", 1)])
def test_damaged_chunk_is_reported_and_rebuilt(tmp_path, cbis_records, monkeypatch, name, row):
    records = cbis_records[:3]  # one lesion each: instance-mask row 1 is image 1's
    path = build_cache(records, tmp_path / "d.h5", size=64, workers=1, progress=False)
    reference = read_cache(path)
    reference_instances = read_instance_masks(path, 1)
    _corrupt_chunk(path, name, row)
    calls = _count_processed(monkeypatch)
    expected = f"d.h5: damaged cache, re-caching 1 image.* checksum: 1 \\({records[1].image_id}\\)"
    with pytest.warns(UserWarning, match=expected):
        assert build_cache(records, path, size=64, workers=1, progress=False) == path
    assert calls == [records[1].image_id]  # only the damaged image is decoded again
    assert not (tmp_path / "d.h5.part").exists()
    _assert_same_cache(reference, path)
    np.testing.assert_array_equal(read_instance_masks(path, 1), reference_instances)


def test_damaged_chunk_of_an_interrupted_build_is_rebuilt(tmp_path, cbis_records, monkeypatch):
    reference = read_cache(build_cache(cbis_records, tmp_path / "r.h5", size=64, workers=1))
    real = cache_module._process
    seen: list[str] = []

    def failing(record, *args):
        if len(seen) == 4:
            raise RuntimeError("injected fault")
        seen.append(record.image_id)
        return real(record, *args)

    monkeypatch.setattr(cache_module, "_process", failing)
    with pytest.raises(RuntimeError, match="injected fault"):
        build_cache(cbis_records, tmp_path / "c.h5", size=64, workers=1)
    part = tmp_path / "c.h5.part"
    _corrupt_chunk(part, "images", 2)  # image 2 is done in the partial file
    calls = _count_processed(monkeypatch)
    with pytest.warns(UserWarning, match=rf"c.h5.part: damaged cache, .*: 2 \({seen[2]}\)"):
        build_cache(cbis_records, tmp_path / "c.h5", size=64, workers=1)
    assert calls == [seen[2]] + [r.image_id for r in cbis_records[4:]]
    _assert_same_cache(reference, tmp_path / "c.h5")


def test_damaged_chunk_is_kept_without_verify_stored(tmp_path, mias_records, recwarn):
    path = build_cache(mias_records[:3], tmp_path / "m.h5", size=64, workers=1, progress=False)
    _corrupt_chunk(path, "images", 1)
    stamp = path.stat().st_mtime_ns
    build_cache(mias_records[:3], path, size=64, workers=1, progress=False, verify_stored=False)
    assert path.stat().st_mtime_ns == stamp and not recwarn.list  # trusted as is
    with pytest.raises(MammosegDataError, match="images of image 1 .* run build_cache again"):
        read_cache(path)


def test_cache_of_other_kinds_is_rebuilt(tmp_path, cbis_records, monkeypatch):
    """A cache of the masses only must not serve every kind (kinds=None): its unions differ."""
    path = build_cache(cbis_records, tmp_path / "k.h5", size=64, kinds="mass", workers=1)
    _, mass_masks, _ = read_cache(path)
    calcified = [i for i, r in enumerate(cbis_records) if r.lesions[0].kind == "calcification"]
    assert calcified and not mass_masks[calcified].any()  # calcifications are not in the union
    every_kind = read_cache(build_cache(cbis_records, tmp_path / "all.h5", size=64, kinds=None))
    assert every_kind[1][calcified].any()
    calls = _count_processed(monkeypatch)
    with pytest.warns(
        UserWarning, match=r"stale cache, rebuilding: kinds was \['mass'\], now None"
    ):
        build_cache(cbis_records, path, size=64, kinds=None, workers=1)
    assert len(calls) == len(cbis_records)
    _assert_same_cache(every_kind, path)


@pytest.mark.parametrize(
    "other, reason",
    [
        ({"kinds": None}, r"kinds was None, now \['mass'\]"),  # same shapes: resuming would mix
        ({"size": 48}, r"size was \[48, 48\], now \[64, 64\]"),
        ({"resize": "stretch"}, "resize was 'stretch', now 'pad'"),
    ],
)
def test_partial_file_of_other_settings_is_not_resumed(
    tmp_path, cbis_records, monkeypatch, other, reason
):
    settings = {"size": 64, "resize": "pad", "kinds": "mass", "workers": 1, "progress": False}
    reference = read_cache(build_cache(cbis_records, tmp_path / "ref.h5", **settings))
    real = cache_module._process
    seen: list[str] = []

    def failing(record, *args):
        if len(seen) == 4:
            raise RuntimeError("injected fault")
        seen.append(record.image_id)
        return real(record, *args)

    monkeypatch.setattr(cache_module, "_process", failing)
    with pytest.raises(RuntimeError, match="injected fault"):
        build_cache(cbis_records, tmp_path / "c.h5", **{**settings, **other})
    assert (tmp_path / "c.h5.part").exists()
    calls = _count_processed(monkeypatch)
    with pytest.warns(
        UserWarning, match=f"c.h5.part: not resuming this interrupted build: {reason}"
    ):
        build_cache(cbis_records, tmp_path / "c.h5", **settings)
    assert len(calls) == len(cbis_records)  # every image decoded again, none taken over
    _assert_same_cache(reference, tmp_path / "c.h5")


@pytest.mark.parametrize("suffix", [".dcm", ".pgm"])
def test_all_zero_mask_file_is_an_error_naming_it(tmp_path, cbis_records, suffix):
    # The cache reads mask files itself (DICOM stored values, or read_mask): a mask that marks
    # no pixel would silently become "no lesion here".
    from dataclasses import replace

    from mammoseg.data.dicom import write_dicom
    from mammoseg.data.pgm import write_pgm

    blank = tmp_path / f"blank{suffix}"
    if suffix == ".dcm":
        write_dicom(blank, np.zeros((40, 30), np.uint8))
    else:
        write_pgm(blank, np.zeros((40, 30), np.uint8))
    record = cbis_records[0]
    lesion = replace(record.lesions[0], mask_path=str(blank))
    bad = replace(record, lesions=(lesion, *record.lesions[1:]))
    with pytest.raises(MammosegDataError) as info:
        build_cache([bad], tmp_path / "c.h5", size=64, kinds=None)
    assert str(info.value) == f"{blank}: the ROI mask is all zero: it marks no lesion pixel"
    assert not (tmp_path / "c.h5").exists()


# --------------------------------------------------------------------------- compact storage


def test_images_are_stored_as_uint16_and_read_as_float32(tmp_path, mias_records):
    import h5py

    path = build_cache(mias_records[:2], tmp_path / "u.h5", size=64, workers=1, progress=False)
    with h5py.File(path, "r") as handle:
        stored = handle["images"][...]
        assert stored.dtype == np.uint16 and handle["masks"].dtype == np.uint8
    images, _, _ = read_cache(path)
    np.testing.assert_array_equal(images, stored.astype(np.float32) / np.float32(65535))
    exact = read_cache(
        build_cache(mias_records[:2], tmp_path / "f.h5", size=64, image_dtype="float32")
    )[0]
    assert exact.dtype == np.float32 and 0 < np.abs(images - exact).max() <= 0.5 / 65535 + 1e-8
    coarse = read_cache(
        build_cache(mias_records[:2], tmp_path / "b.h5", size=64, image_dtype="uint8")
    )
    assert 0 < np.abs(coarse[0] - exact).max() <= 0.5 / 255 + 1e-7
    lazy, _, _ = read_cache(path, lazy=True)
    assert lazy.dtype == np.float32 and lazy.shape == (2, 64, 64)
    np.testing.assert_array_equal(lazy[1], images[1])
    with pytest.raises(ValueError, match="`image_dtype` must be one of .*received 'int16'"):
        build_cache(mias_records[:2], tmp_path / "x.h5", size=64, image_dtype="int16")


def test_a_version_3_float32_cache_is_rebuilt(tmp_path, mias_records):
    import json

    import h5py

    path = build_cache(mias_records[:2], tmp_path / "v.h5", size=64, workers=1, progress=False)
    with h5py.File(path, "r+") as handle:  # what a v3 file's manifest said
        manifest = json.loads(handle["manifest"][...].tobytes())
        manifest["version"] = 3
        del manifest["image_dtype"]
        del handle["manifest"]
        handle["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    with pytest.raises(MammosegDataError, match="cache of another version"):
        read_cache(path)
    with pytest.warns(UserWarning, match="stale cache, rebuilding: version was 3, now 4"):
        build_cache(mias_records[:2], path, size=64, workers=1, progress=False)
    assert read_cache(path)[0].dtype == np.float32


def test_shard_by_patient_rejects_bad_counts(mias_records):
    from mammoseg.data.cache import shard_by_patient

    patients = len({r.patient_id for r in mias_records})
    with pytest.raises(ValueError, match=f"at most the number of patients \\({patients}\\)"):
        shard_by_patient(mias_records, patients + 1)
    with pytest.raises(ValueError, match="`shards` must be a positive integer, received 0"):
        shard_by_patient(mias_records, 0)


def test_other_kinds_are_recomputed_from_the_instances_never_the_built_union(
    tmp_path, cbis_records
):
    # Built for masses; asked for calcifications, every mask is the union of that image's
    # calcification instances (empty on a mass-only image), not the stored mass union.
    from mammoseg.data.cache import CacheReader

    path = build_cache(cbis_records, tmp_path / "c.h5", size=64, kinds=("mass",))
    _, built, records = read_cache(path)
    _, calcs, _ = read_cache(path, kinds=["calcification"])
    with CacheReader(path, kinds=["calcification"]) as reader:  # the streaming side
        _, streamed = reader.read_all()
    np.testing.assert_array_equal(streamed, calcs)
    mass_only = 0
    for index, record in enumerate(records):
        instances = read_instance_masks(path, index)
        kinds = [lesion.kind for lesion in record.lesions if lesion.has_region]
        expected = np.zeros((64, 64), np.uint8)
        for instance, kind in zip(instances, kinds):
            if kind == "calcification":
                expected |= instance
        np.testing.assert_array_equal(calcs[index], expected)
        mass_only += "calcification" not in kinds and built[index].any()
    assert mass_only > 0  # the case where serving the built union would be wrong


def test_a_lesion_without_coordinates_is_kept_as_it_is(tmp_path, mias_records):
    # A MIAS line without coordinates (mdb059) has no region: nothing is drawn or measured for
    # it, and it comes back unchanged beside the drawable lesions.
    from dataclasses import replace

    from mammoseg.data import Lesion

    record = next(r for r in mias_records if r.lesions)
    bare = Lesion("mass", "benign", None, None)
    odd = replace(record, lesions=(bare, *record.lesions))
    path = build_cache([odd], tmp_path / "c.h5", size=64, kinds=None)
    _, masks, (back,) = read_cache(path)
    assert back.lesions[0] == bare
    assert [les.center for les in back.lesions[1:]] == [les.center for les in record.lesions]
    assert masks[0].any()
