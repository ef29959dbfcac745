"""What every experiment script shares: options, scales, data, sub-runs, metrics and the report.

Options (all scripts):
    --data phantom | mias:PATH | cbis-ddsm:PATH     (default: the built-in phantom data)
    --quick            seconds: tiny images, one short epoch (used by the tests)
    --paper-scale      1024², the paper's models and epochs (for a GPU)
    --output-dir DIR   (default: runs/<script name>)
    --seed N, --precision auto|fp32|bf16, --strategy default|mirrored|multi-worker, --resume
    --kinds all|mass   lesions drawn into the masks (default all: the paper's "either a malignant
                       or benign tumour", every MIAS circle; CBIS-DDSM masses and calcifications)
    --protocol ours|authors
                       ours: patient split, every chosen lesion drawn, the mode's batch size and
                       precision. authors: their 2018 code (facts.md §1): per-line leaky split,
                       last circle only / CBIS masks == 255 after resizing, every kind, batch 1,
                       float32 (`mammoseg.data.authors`)
    --seeds N [N ...]  every sub-run once per seed (deterministic ops), each seed in its own
                       process and folder ``seed_N/``; the report gives mean ± std and min–max of
                       every metric and a verdict only where the seeds agree

A run leaves one folder: report.md, metrics.json, figures (PNG), and one sub-folder per trained
model with history.csv, model.keras and a TensorBoard log.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python experiments/x.py` from a checkout
    sys.path.insert(0, str(REPO))

import reporting  # noqa: E402

from mammoseg import cli, training  # noqa: E402
from mammoseg import data as mdata  # noqa: E402


@dataclass(frozen=True, kw_only=True)
class Scale:
    """Sizes of one run mode. Scripts start from these and override what they need.

    Example:
        >>> SCALES["quick"].image_size
        64
    """

    name: str  # the mode: "quick", "default" or "paper"
    image_size: int  # side of the square model input
    phantom_images: int  # built-in images to generate
    phantom_size: int  # side of the generated phantom images
    epochs: int
    batch_size: int
    base_filters: int  # UNet width
    depth: int  # UNet depth
    max_images: int | None  # cap on the images of each split (None: all)
    eval_images: int  # images used for the half-epoch curves


SCALES = {
    scale.name: scale
    for scale in (
        Scale(
            name="quick",
            image_size=64,
            phantom_images=24,
            phantom_size=256,
            epochs=1,
            batch_size=4,
            base_filters=4,
            depth=2,
            max_images=12,
            eval_images=4,
        ),
        Scale(
            name="default",
            image_size=256,
            phantom_images=322,
            phantom_size=1024,
            epochs=6,
            batch_size=8,
            base_filters=16,
            depth=4,
            max_images=None,
            eval_images=24,
        ),
        Scale(
            name="paper",
            image_size=1024,
            phantom_images=322,
            phantom_size=1024,
            epochs=10,
            batch_size=2,
            base_filters=64,
            depth=4,
            max_images=None,
            eval_images=50,
        ),
    )
}


# --kinds → the lesion kinds drawn into the masks (None: every kind with a region)
KINDS: dict[str, tuple[str, ...] | None] = {"all": None, "mass": ("mass",)}
PROTOCOLS = ("ours", "authors")


def build_parser(description: str, *, target_options: bool = True) -> argparse.ArgumentParser:
    """The common command line; a script adds its own options to it.

    ``--quick`` and ``--paper-scale`` both set ``args.mode`` ("quick", "paper", else
    "default"), the one key of `SCALES` and of a script's own per-mode presets.

    Args:
        description: the script's docstring.
        target_options: add ``--kinds`` and ``--protocol`` (the paper's sections); a script
            with its own fixed target (the mass recipe) leaves them out and runs
            ``kinds=mass``, ``protocol=ours``.

    Example:
        >>> build_parser("demo").parse_args(["--quick"]).mode
        'quick'
        >>> build_parser("demo").parse_args([]).kinds
        'all'
    """
    # No abbreviations: --seeds is re-written for each seed's process, --seed must stay --seed.
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    if target_options:
        parser.add_argument(
            "--kinds",
            choices=list(KINDS),
            default="all",
            help="lesions drawn into the masks: all (the paper's target) or mass",
        )
        parser.add_argument(
            "--protocol",
            choices=PROTOCOLS,
            default="ours",
            help="ours (patient split) or authors (their leaky 2018 pipeline, batch 1, float32)",
        )
    else:
        parser.set_defaults(kinds="mass", protocol="ours")
    parser.add_argument("--data", default="phantom", help="phantom | mias:PATH | cbis-ddsm:PATH")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="tiny run in seconds (tests)",
    )
    mode.add_argument(
        "--paper-scale",
        dest="mode",
        action="store_const",
        const="paper",
        help="the paper's sizes (GPU)",
    )
    parser.set_defaults(mode="default")
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--seed", type=_non_negative_int, default=0)
    parser.add_argument(
        "--seeds",
        type=_non_negative_int,
        nargs="+",
        default=None,
        help="run every sub-run once per seed (deterministic ops); report mean ± std",
    )
    # Set by the --seeds driver: every seed's process keeps the first seed's split.
    parser.add_argument(
        "--split-seed", type=_non_negative_int, default=None, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--deterministic", action="store_true", help="bit-reproducible runs for a seed"
    )
    parser.add_argument("--precision", choices=training.PRECISIONS, default="auto")
    parser.add_argument("--strategy", choices=training.STRATEGIES, default="default")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted run")
    again.add_argument(
        "--overwrite", action="store_true", help="delete this program's earlier run folder first"
    )
    parser.add_argument(
        "--epochs", type=_positive_int, default=None, help="override the mode's epochs"
    )
    parser.add_argument(
        "--sub-runs",
        nargs="+",
        default=None,
        metavar="NAME",
        help="run only these sub-runs of the section (the others are reported as not run)",
    )
    parser.add_argument(
        "--max-steps",
        type=_positive_int,
        default=None,
        help="train one epoch of N steps: runs every line of a mode (--paper-scale) on a CPU",
    )
    # Tests only: interrupt training after this epoch, to exercise --resume.
    parser.add_argument(
        "--stop-after-epoch", type=_positive_int, default=None, help=argparse.SUPPRESS
    )
    return parser


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the option in its error)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, received {text}")
    return value


def _non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, received {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, received {text!r}") from None


RUN_MARKER = "run.json"  # written first into every run folder: what the program may delete
LOCK_NAME = "run.lock"


def _settings(section: str, args: argparse.Namespace, scale: Scale) -> dict:
    """What a resumed run must share with the run it continues."""
    return {
        "section": section,
        "data": args.data,
        "seed": args.seed,
        "seeds": args.seeds,
        "deterministic": bool(args.deterministic),
        "kinds": args.kinds,
        "protocol": args.protocol,
        "scale": asdict(scale),
    }


def prepare_run_folder(folder: Path, settings: dict, *, resume: bool, overwrite: bool) -> None:
    """Make `folder` this run's own folder, never deleting or reusing a foreign one.

    An existing non-empty folder is used only when it holds this program's `run.json` and
    `resume` (same settings, else refused with the differences) or `overwrite` (deleted
    first) is given.

    Raises:
        SystemExit: with a message naming the folder and what to do.
    """
    marker = folder / RUN_MARKER
    if folder.exists() and not folder.is_dir():
        raise SystemExit(f"--output-dir {folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not marker.is_file():
            raise SystemExit(
                f"--output-dir {folder} is not empty and is not a mammoseg run folder (no "
                f"{RUN_MARKER}); choose another folder, nothing was changed"
            )
        if not (resume or overwrite):
            raise SystemExit(
                f"--output-dir {folder} holds an earlier run; pass --resume to continue it or "
                "--overwrite to replace it"
            )
        if resume:
            try:
                recorded = json.loads(marker.read_text())
            except (OSError, ValueError) as err:
                raise SystemExit(f"{marker} cannot be read ({err}); cannot resume") from err
            diffs = [
                f"{key}: run has {recorded.get(key)!r}, now {value!r}"
                for key, value in settings.items()
                if recorded.get(key) != value
            ]
            if diffs:
                raise SystemExit(
                    f"--resume refused: {folder} was started with other settings:\n  "
                    + "\n  ".join(diffs)
                )
            return
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    training.save_json(marker, settings)


def acquire_lock(folder: Path) -> Path:
    """Take `folder`'s lock file (pid and host), or refuse while another live run holds it.

    A lock whose pid is no longer alive on this host is stale: taken over with a warning.

    Raises:
        SystemExit: another run holds the lock.
    """
    lock = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and not _pid_alive(holder.get("pid")):
                print(f"  warning: taking over the stale lock {lock} of pid {holder.get('pid')}")
                lock.unlink(missing_ok=True)
                continue
            raise SystemExit(
                f"{folder} is in use by pid {holder.get('pid')} on {holder.get('host')} "
                f"({lock}); wait for it, or delete the lock if that run is gone"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        atexit.register(lambda: lock.unlink(missing_ok=True))
        return lock
    raise SystemExit(f"could not take the lock {lock}")


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def paper_settings_paragraph(used: list[str], not_used: list[str]) -> str:
    """The report paragraph naming the paper's settings a run used and those it could not.

    Example:
        >>> print(paper_settings_paragraph(["batch 1"], ["2048² images"]))
        **The paper's settings used:** batch 1.
        <BLANKLINE>
        **Not used (could not, or not here):** 2048² images.
    """
    return (
        "**The paper's settings used:** "
        + "; ".join(used)
        + ".\n\n**Not used (could not, or not here):** "
        + "; ".join(not_used)
        + "."
    )


def parse_set(items: list[str], known: Collection[str]) -> dict:
    """`mammoseg.cli.parse_set` for a script: a bad item ends it with the message.

    Example:
        >>> parse_set(["depth=4", "loss=dice_bce"], {"depth", "loss"})
        {'depth': 4, 'loss': 'dice_bce'}
    """
    try:
        return cli.parse_set(items, sorted(known))
    except ValueError as err:
        raise SystemExit(str(err)) from None


def add_set_option(parser: argparse.ArgumentParser, example: str) -> None:
    """The repeatable ``--set KEY=VALUE`` option (see `parse_set`)."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a setting of the mode, e.g. --set {example} (repeatable)",
    )


def parse_data_option(value: str) -> tuple[str, Path | None]:
    """`mammoseg.cli.parse_data_option` for a script: a bad value ends it with the message."""
    try:
        return cli.parse_data_option(value)
    except ValueError as err:
        raise SystemExit(str(err)) from None


class Run:
    """One run of an experiment script: its folder, data, sub-runs and report.

    Args:
        section: e.g. "V.C", shown in the report.
        title: the report's title.
        args: the parsed command line.
        scale: sizes (already adjusted by the script), usually ``SCALES[args.mode]``.

    ``self.callbacks`` holds the extra Keras callbacks every training run of the script
    gets: `training.StopAfterEpoch` when the test-only ``--stop-after-epoch`` is given.

    With several ``--seeds`` the Run is only a driver: it runs the script once per seed, each
    in its own process and folder (`run_seeds`), writes the report of their spread and exits.
    ``--protocol authors`` sets batch 1 and float32 here, before anything is built.
    """

    def __init__(self, section: str, title: str, args: argparse.Namespace, scale: Scale):
        self.section, self.title, self.args = section, title, args
        if args.epochs is not None:
            scale = replace(scale, epochs=args.epochs)
        if args.protocol == "authors":
            if args.precision == "bf16":
                raise SystemExit("--protocol authors trains in float32: drop --precision bf16")
            args.precision = "fp32"
            scale = replace(scale, batch_size=1)
        self.scale = scale
        self.kinds = KINDS[args.kinds]
        script = Path(sys.argv[0]).stem or "experiment"
        self.dir = Path(args.output_dir or REPO / "runs" / script)
        self.data_name, self.data_path = parse_data_option(args.data)
        if args.seeds is not None:
            if len(args.seeds) > 1:
                raise SystemExit(run_seeds(self, sys.argv[1:]))
            args.seed, args.deterministic = args.seeds[0], True
        prepare_run_folder(
            self.dir,
            _settings(section, args, scale),
            resume=args.resume,
            overwrite=getattr(args, "overwrite", False),
        )
        acquire_lock(self.dir)
        self.start = time.time()
        import keras

        keras.utils.set_random_seed(args.seed)
        if args.deterministic:
            training.set_determinism(enabled=True)
        self.precision = training.set_precision(args.precision)
        self.strategy = training.make_strategy(args.strategy)
        self.callbacks: list = []
        if args.stop_after_epoch is not None:
            self.callbacks.append(training.StopAfterEpoch(args.stop_after_epoch))
        self.results: dict[str, dict] = {}
        self.sub_run_names: list[str] = []  # every sub-run the section asked for, run or not
        self.learning_rates: dict[str, float] = {}  # sub-run → Adam rate, for the header
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        print(
            f"[{section}] {title}\n  mode={scale.name} data={args.data} size={scale.image_size} "
            f"epochs={scale.epochs} batch={scale.batch_size} precision={self.precision} "
            f"kinds={args.kinds} protocol={args.protocol} strategy={args.strategy} "
            f"replicas={self.strategy.num_replicas_in_sync}\n  output: {self.dir}"
        )

    # ------------------------------------------------------------------ data

    def load_records(self) -> list[mdata.Record]:
        """All records of the chosen dataset (read once)."""
        if not hasattr(self, "_records"):
            if self.data_name == "phantom":
                self._records = mdata.load_records(
                    "phantom", n_images=self.scale.phantom_images, size=self.scale.phantom_size
                )
            else:
                self._records = mdata.load_records(self.data_name, self.data_path)
        return self._records

    def splits(self, records=None) -> dict[str, list[mdata.Record]]:
        """The split, each part capped at ``max_images``: by patient (60/20/20, stratified on
        the chosen kinds) under ``--protocol ours``, the authors' per-line leaky split under
        ``authors``."""
        if not hasattr(self, "_splits"):
            records = records if records is not None else self.load_records()
            train, val, test = split_records(
                records,
                protocol=self.args.protocol,
                kinds=self.kinds,
                seed=self.split_seed,
            )
            parts = {"train": train, "val": val, "test": test}
            empty = [name for name, part in parts.items() if not part]
            if empty:
                patients = len({r.patient_id for r in records})
                raise SystemExit(
                    f"--data {self.args.data}: {len(records)} image(s) of {patients} patient(s) "
                    f"leave the {' and '.join(empty)} split(s) empty; the 60/20/20 split by "
                    "patient needs at least 3 patients (give more images)"
                )
            cap = self.scale.max_images
            self._splits = {
                "train": _cap(train, cap),
                "val": _cap(val, cap),
                "test": _cap(test, cap),
            }
        return self._splits

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Decoded (images (N, H, W, 1) float32, masks (N, H, W, 1) uint8) of a split.

        CBIS-DDSM under our protocol comes from the HDF5 preprocessing cache (`cbis_cache`),
        so its DICOMs are decoded once, not once per run; other data are decoded here.
        """
        if split not in self._arrays:
            records = self.splits()[split]
            if self.data_name == "cbis-ddsm" and self.args.protocol == "ours":
                images, masks = self._cached_split(records)
            else:
                images, masks = decode_split(
                    records, self.scale.image_size, kinds=self.kinds, protocol=self.args.protocol
                )
            self._arrays[split] = images[..., None], masks[..., None]
        return self._arrays[split]

    def cbis_cache(self) -> Path:
        """The HDF5 cache of every CBIS-DDSM record at the run's image size, under
        ``$MAMMOSEG_CACHE`` (default ``~/.cache/mammoseg``): built on first use, reused while
        its source files are unchanged (`mammoseg.data.cache.build_cache` checks them)."""
        import hashlib

        from mammoseg.data.cache import build_cache

        root = Path(os.environ.get("MAMMOSEG_CACHE", Path.home() / ".cache" / "mammoseg"))
        key = hashlib.sha1(str(Path(self.data_path).resolve()).encode()).hexdigest()[:12]
        size = self.scale.image_size
        path = root / f"cbis-ddsm-{key}-{size}.h5"
        # "stretch", as the records' own resize: the cache serves the same frame.
        return build_cache(
            self.load_records(), path, size=size, resize="stretch", kinds=None, progress=False
        )

    def _cached_split(self, records: list[mdata.Record]) -> tuple[np.ndarray, np.ndarray]:
        from mammoseg.data.cache import read_cache

        if not hasattr(self, "_cbis_cached"):
            images, masks, cached = read_cache(self.cbis_cache(), kinds=self.kinds)
            self._cbis_cached = ({r.image_id: i for i, r in enumerate(cached)}, images, masks)
        index, images, masks = self._cbis_cached
        pick = [index[record.image_id] for record in records]
        return images[pick], masks[pick]

    @property
    def split_seed(self) -> int:
        """The seed of the patient split: the first of ``--seeds`` for every seed's process."""
        return self.args.split_seed if self.args.split_seed is not None else self.args.seed

    def dataset(self, split: str, *, augment=None, shuffle: bool = True, records=None, map_fn=None):
        """A batched tf.data pipeline of a split at the run's size and global batch size.

        ``records`` replaces the split's records (e.g. an oversampled training list);
        ``map_fn`` is applied to each (images, masks) batch (e.g. to reshape the targets).
        """
        batch = self.scale.batch_size * self.strategy.num_replicas_in_sync
        if records is not None and self.args.protocol == "ours":
            data = mdata.make_dataset(
                records,
                self.scale.image_size,
                batch,
                augment=augment,
                shuffle=shuffle,
                seed=self.args.seed,
                kinds=self.kinds,
                progress=False,
            )
        else:
            if records is not None:  # the authors' masks are drawn by `decode_split` only
                images, masks = decode_split(
                    records, self.scale.image_size, kinds=self.kinds, protocol="authors"
                )
            else:
                images, masks = (a[..., 0] for a in self.arrays(split))
            data = mdata.dataset_from_arrays(
                images, masks, batch, augment=augment, shuffle=shuffle, seed=self.args.seed
            )
        return data if map_fn is None else data.map(map_fn)

    def train_and_evaluate(
        self,
        folder: Path,
        model_fn: Callable,
        loss_fn: Callable,
        learning_rate: float,
        *,
        train_data=None,
        target_fn=None,
        steps_per_epoch: int | None = None,
        metrics: Callable[[], list] | None = None,
    ) -> dict:
        """Train a segmenter on the train split and evaluate it on val and test.

        Args:
            folder: the sub-run folder.
            model_fn: builds the model (inside the strategy scope).
            loss_fn: returns the loss object.
            learning_rate: Adam learning rate.
            train_data: the training dataset (default: the train split, shuffled).
            target_fn: map applied to every (images, masks) batch, for models whose targets
                are not (B, H, W, 1) masks (the shallow CNN's per-pixel classes).
            steps_per_epoch: for repeated training data.
            metrics: returns the Keras metrics to compile with (e.g. the authors' mean IoU);
                their values shown in the training logs join the half-epoch rows under
                their names, as the authors' Keras 2 progress bar showed them.

        Returns:
            {"history", "half_epoch" (Fig. 4 rows), "val", "test"} with the metrics of
            `segmentation_metrics`; the first validation predictions are saved in
            ``folder/val_probabilities.npy`` for the figures.
        """
        import keras

        from mammoseg.training import HalfEpochEvaluation, fit_segmenter, predict_probabilities

        scale = self.scale
        replicas = self.strategy.num_replicas_in_sync
        epochs = scale.epochs
        if self.args.max_steps is not None:  # one epoch of N steps (the paper-scale smoke run)
            epochs, steps_per_epoch = 1, self.args.max_steps
        steps = steps_per_epoch or int(
            np.ceil(len(self.arrays("train")[0]) / (scale.batch_size * replicas))
        )
        val_images, val_masks = self.arrays("val")
        curve = HalfEpochEvaluation(
            val_images[: scale.eval_images],
            val_masks[: scale.eval_images],
            steps_per_epoch=steps,
            evaluate=lambda probs, masks: segmentation_metrics(
                training.to_probability_map(probs, *masks.shape[1:3]), masks
            ),
        )

        self.learning_rates[folder.name] = learning_rate
        logged = LoggedAtHalfEpochs(steps_per_epoch=steps)

        def compile_fn(model):
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate),
                loss=loss_fn(),
                metrics=metrics() if metrics is not None else None,
            )

        model, history = fit_segmenter(
            model_fn,
            compile_fn,
            train_data if train_data is not None else self.dataset("train", map_fn=target_fn),
            self.dataset("val", shuffle=False, map_fn=target_fn),
            epochs=epochs,
            run_dir=folder,
            strategy=self.strategy,
            steps_per_epoch=steps_per_epoch,
            callbacks=[curve, logged, *self.callbacks],
            resume=self.args.resume,
        )
        by_epoch = {row["epoch"]: row for row in logged.rows}
        rows = [{**row, **by_epoch.get(row["epoch"], {})} for row in curve.rows]
        result = {"history": history, "half_epoch": rows}
        for split in ("val", "test"):
            images, masks = self.arrays(split)
            probabilities = predict_probabilities(model, images)
            result[split] = segmentation_metrics(probabilities, masks)
            if split == "val":
                pick = showcase(masks)
                np.save(folder / "val_probabilities.npy", probabilities[pick].astype(np.float16))
        return result

    def figures_for(self, labels: dict[str, str], triplets=()) -> list[str]:
        """Fig. 1, Fig. 4, loss curves and Fig. 3 triplets of the finished sub-runs."""
        images, masks = self.arrays("val")
        return reporting.make_figures(self.dir, images, masks, self.results, labels, triplets)

    def collapse_row(self, name: str, label: str, paper: str, *, overlap_loss: bool = False):
        """One findings row for a sub-run: its test metrics and whether it collapsed."""
        result = self.results.get(name, {})
        return reporting.collapse_row(
            result, label, paper, image_size=self.scale.image_size, overlap_loss=overlap_loss
        )

    def sub_run(self, name: str, fn: Callable[[Path], dict]) -> dict:
        """Run one configuration; a finished one is reused on --resume, a failing one is
        recorded with its error and the others still run."""
        self.sub_run_names.append(name)
        if self.args.sub_runs and name not in self.args.sub_runs:
            self.results[name] = {"status": "skipped"}
            return self.results[name]
        self.splits()  # a split too small to train and test is refused before any sub-run
        folder = self.dir / name
        result_file = folder / "result.json"
        if self.args.resume and result_file.is_file():
            print(f"  [{name}] already complete, reusing its result")
            self.results[name] = json.loads(result_file.read_text())
            return self.results[name]
        folder.mkdir(parents=True, exist_ok=True)
        started = time.time()
        print(f"  [{name}] training ...")
        import keras

        # Seeded per sub-run, so a configuration gives the same result alone (--only) or in
        # the full sequence.
        keras.utils.set_random_seed(self.args.seed)
        try:
            result = {"status": "ok", **fn(folder)}
        except (KeyboardInterrupt, training.CheckpointError):
            raise  # an unreadable checkpoint ends the run with an error, never a failed sub-run
        except Exception as err:  # recorded in the report, the other sub-runs go on
            traceback.print_exc()
            result = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
        result["seconds"] = round(time.time() - started, 1)
        training.save_json(result_file, result)
        self.results[name] = result
        return result

    # ------------------------------------------------------------------ report

    def write(self, findings: list[tuple[str, str, str, str]], notes: str = "", figures=()):
        """Write metrics.json and report.md.

        Args:
            findings: rows (what, the paper's result, ours, verdict), one line each. Under
                ``--quick`` every verdict becomes "smoke test: no verdict".
            notes: free Markdown after the table (setup details, caveats).
            figures: file names of the figures, shown in the report.
        """
        unknown = sorted(set(self.args.sub_runs or ()) - set(self.sub_run_names))
        if unknown:
            raise SystemExit(
                f"--sub-runs: no sub-run named {', '.join(unknown)}; this section's sub-runs: "
                f"{', '.join(self.sub_run_names)}"
            )
        seconds = round(time.time() - self.start, 1)
        setup = {
            "section": self.section,
            "data": self.args.data,
            "mode": self.scale.name,
            "scale": asdict(self.scale),
            "kinds": self.args.kinds,
            "protocol": self.args.protocol,
            "batch_size": self.scale.batch_size,
            "learning_rates": self.learning_rates,
            "precision": self.precision,
            "strategy": self.args.strategy,
            "replicas": self.strategy.num_replicas_in_sync,
            "seed": self.args.seed,
            "split_seed": self.split_seed,
            "deterministic": self.args.deterministic,
            "seconds": seconds,
            "split_sizes": {k: len(v) for k, v in getattr(self, "_splits", {}).items()},
        }
        if self.scale.name == "quick":
            findings = [(*row[:3], reporting.SMOKE_TEST) for row in findings]
        summary = [dict(zip(("what", "paper", "ours", "verdict"), row)) for row in findings]
        training.save_json(
            self.dir / "metrics.json", {"setup": setup, "findings": summary, "runs": self.results}
        )
        lines = [
            f"# Section {self.section}: {self.title}",
            "",
            reporting.header(setup),
            f"Seed {self.args.seed} (split seed {self.split_seed}); split "
            f"{setup['split_sizes']}; wall time {seconds:.0f} s.",
            "",
            "| what | paper | ours | verdict |",
            "|---|---|---|---|",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in findings],
            "",
        ]
        failed = {k: v for k, v in self.results.items() if v.get("status") == "failed"}
        if failed:
            lines += ["## Failed sub-runs", ""]
            lines += [f"- `{k}`: {v['error']}" for k, v in failed.items()] + [""]
        if notes:
            lines += [notes.strip(), ""]
        if figures:
            lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
        lines += [
            "Machine-readable results: `metrics.json`; per-model folders hold "
            "`history.csv`, `model.keras` and a TensorBoard log.",
            "",
        ]
        training.write_text_atomic(self.dir / "report.md", "\n".join(lines))
        print(f"  report: {self.dir / 'report.md'}")
        if failed:
            # The report lists what succeeded; the exit status says not everything did.
            raise SystemExit(
                f"{len(failed)} of {len(self.results)} sub-run(s) failed: " + ", ".join(failed)
            )


def _cap(records, cap):
    return records if cap is None else records[:cap]


# ---------------------------------------------------------------- protocols: split and masks


def split_records(
    records: list[mdata.Record],
    *,
    protocol: str = "ours",
    kinds: tuple[str, ...] | None = None,
    seed: int = 0,
) -> tuple[list[mdata.Record], list[mdata.Record], list[mdata.Record]]:
    """(train, val, test) as the run's protocol makes them.

    ``ours``: `mammoseg.data.split_by_patient` (60/20/20, stratified on ``kinds``, ``seed``);
    ``authors``: `mammoseg.data.authors.per_line_split` (their fixed random_state 42: the seed
    changes nothing, and one image can be in train and test).

    Example:
        >>> train, val, test = split_records(records, protocol="authors")  # doctest: +SKIP
    """
    if protocol == "authors":
        from mammoseg.data.authors import per_line_split

        return per_line_split(records)
    return mdata.split_by_patient(records, seed=seed, kinds=kinds)


def decode_split(
    records: list[mdata.Record],
    size: int,
    *,
    kinds: tuple[str, ...] | None = None,
    protocol: str = "ours",
) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, H, W) float32 and masks (N, H, W) uint8 every section trains on.

    ``ours`` draws every lesion of ``kinds`` (None: every kind with a region);
    ``authors`` draws their masks (`mammoseg.data.authors.authors_mask`: every kind, the last
    circle only, CBIS masks kept where == 255 after a bilinear resize), whatever ``kinds``.

    Example:
        >>> images, masks = decode_split(records, 64, kinds=None)  # doctest: +SKIP
    """
    from mammoseg.data.pipeline import decode_records

    images, masks = decode_records(records, size, kinds=kinds, progress=False)
    if protocol == "authors":
        from mammoseg.data.authors import authors_mask

        masks = np.stack([authors_mask(record, size) for record in records])
    return images, masks


class LoggedAtHalfEpochs(keras.callbacks.Callback):
    """The compiled metrics as the training log shows them, at every half epoch.

    Keras shows a metric's running value over the epoch's batches; the authors' Fig. 4 came
    from that display (their metric streamed over every batch, `AuthorsMeanIoU`). Rows are
    ``{"epoch": 0.5, "authors_mean_iou": ...}``; at an epoch's end the validation values
    (``val_...``) join. Losses are left out (the history has them).

    Args:
        steps_per_epoch: batches per epoch (the half-way point is ``steps_per_epoch // 2``).
    """

    def __init__(self, *, steps_per_epoch: int) -> None:
        super().__init__()
        self.half = max(int(steps_per_epoch) // 2, 1)
        self.rows: list[dict] = []  # checkpointed by fit_segmenter, so a resume keeps them
        self._epoch = 0

    def _record(self, epoch: float, logs) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if "loss" not in k}
        self.rows.append({"epoch": epoch, **values})

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.half:
            self._record(self._epoch + 0.5, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1.0, logs)


# ---------------------------------------------------------------- --seeds: one process per seed

# option → how many values follow it, for the options a seed's process gets anew
_SEED_DRIVER_OPTIONS = {"--seeds": "+", "--seed": 1, "--split-seed": 1, "--output-dir": 1}
_SEED_DRIVER_FLAGS = ("--overwrite", "--deterministic")


def seed_argv(argv: list[str], seed: int, split_seed: int, folder: Path) -> list[str]:
    """The command line of one seed's process: ``argv`` without the driver's options, plus
    ``--seed``, ``--split-seed`` (the first seed's split for every seed), ``--deterministic``
    and the seed's own ``--output-dir``.

    Example:
        >>> seed_argv(["--quick", "--seeds", "0", "1", "--only", "dice"], 1, 0, Path("r/s1"))[:4]
        ['--quick', '--only', 'dice', '--seed=1']
    """
    out, index = [], 0
    while index < len(argv):
        token = argv[index]
        name = token.split("=", 1)[0]
        index += 1
        if name in _SEED_DRIVER_FLAGS:
            continue
        if name in _SEED_DRIVER_OPTIONS:
            if "=" in token:
                continue
            if _SEED_DRIVER_OPTIONS[name] == 1:
                index += 1
            else:
                while index < len(argv) and not argv[index].startswith("-"):
                    index += 1
            continue
        out.append(token)
    return [
        *out,
        f"--seed={seed}",
        f"--split-seed={split_seed}",
        "--deterministic",
        f"--output-dir={folder}",
    ]


def run_seeds(run: Run, argv: list[str]) -> int | str:
    """Run the script once per seed in its own process, then write the spread's report.

    Each seed runs into ``<dir>/seed_<N>/`` with deterministic ops and the first seed's
    split (so the spread is that of training, on the same images). ``--resume`` reuses a
    seed whose report exists.

    Returns:
        0, or the message naming the seeds that failed (the exit status).
    """
    args, seeds = run.args, list(dict.fromkeys(run.args.seeds))
    prepare_run_folder(
        run.dir,
        _settings(run.section, args, run.scale),
        resume=args.resume,
        overwrite=args.overwrite,
    )
    acquire_lock(run.dir)
    started = time.time()
    per_seed, failed, seconds = {}, [], {}
    for seed in seeds:
        folder = run.dir / f"seed_{seed}"
        seed_started = time.time()
        if args.resume and (folder / "report.md").is_file():
            print(f"== seed {seed}: complete, reusing {folder}")
        else:
            print(f"== seed {seed}: {folder}", flush=True)
            command = [sys.executable, sys.argv[0], *seed_argv(argv, seed, seeds[0], folder)]
            if subprocess.call(command) != 0:
                failed.append(seed)
        seconds[seed] = round(time.time() - seed_started, 1)
        metrics = folder / "metrics.json"
        if metrics.is_file():
            per_seed[seed] = json.loads(metrics.read_text())
        elif seed not in failed:
            failed.append(seed)
    if not per_seed:
        return f"every seed failed: {seeds}"
    summary = reporting.aggregate_seeds(per_seed)
    summary["setup"].update(seconds=round(time.time() - started, 1), seconds_per_seed=seconds)
    training.save_json(run.dir / "metrics.json", summary)
    first = run.dir / f"seed_{seeds[0]}"
    figures = sorted(path.name for path in first.glob("*.png"))
    text = reporting.seeds_report(
        run.section, run.title, summary, failed_seeds=failed, figures=figures
    )
    training.write_text_atomic(run.dir / "report.md", text)
    print(f"  report: {run.dir / 'report.md'}")
    return f"seeds failed: {failed}" if failed else 0


# Re-exported for the scripts: `common.fmt`, `common.showcase`, ...
segmentation_metrics = reporting.segmentation_metrics
showcase = reporting.showcase
verdict = reporting.verdict
fmt = reporting.fmt
