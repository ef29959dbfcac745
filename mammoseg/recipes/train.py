"""Train the recipe: a small batch-normalised UNet on lesion-centred patches, an overlap loss,
early stopping on the validation Dice of whole images, and a time budget.

The network sees patches but is judged as it will be used: at the end of every epoch the
validation images are predicted whole (sliding windows) and their Dice per image decides which
weights are kept and when to stop.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mammoseg import losses
from mammoseg.metrics import dice_from_counts
from mammoseg.recipes.candidates import overlap_counts
from mammoseg.recipes.config import RecipeConfig
from mammoseg.recipes.inference import predict_working
from mammoseg.recipes.network import build_recipe_model, load_initial_weights
from mammoseg.recipes.preprocess import WorkingImage
from mammoseg.recipes.sampling import LesionCentredSampler
from mammoseg.training import fit_segmenter

BEST_WEIGHTS = "best.weights.h5"
BEST_STATE = "best.json"
VALIDATION_LOG = "validation.csv"
VALIDATION_PATCH_BATCHES = 4
START_FILE = "start.json"  # what a checkpoint was started with, checked when it is resumed
# Settings a resumed run may change: a resource limit, and what validation chooses afterwards.
RESUMABLE_CHANGES = ("time_budget_minutes", "threshold", "mask_regions")


def recipe_loss(config: RecipeConfig) -> keras.losses.Loss:
    """Batch Dice + BCE (default) or batch focal Tversky, both on logits.

    The overlap term is summed over the whole batch ("batch Dice", nnU-Net). Per patch, two in
    three patches hold no lesion and their smoothed Dice saturates near 1 as soon as a few
    pixels are predicted, so it stops penalising false positives at all: a first run with
    per-patch Dice + BCE flooded half of every normal breast (about 30 000 false-positive
    pixels per normal image at the working resolution, test Dice per image 0.06).
    """
    if config.loss == "focal_tversky":
        return losses.FocalTverskyLoss(
            alpha=0.3, beta=0.7, gamma=0.75, from_logits=True, over_batch=True
        )
    return losses.CombinedLoss(
        [
            losses.DiceLoss(from_logits=True, over_batch=True),
            losses.WeightedBinaryCrossentropy(1.0, 1.0, from_logits=True),
        ],
        [1.0, 1.0],
        name="batch_dice_bce_loss",
    )


class WholeImageValidation(keras.callbacks.Callback):
    """Every epoch: Dice per image on whole validation images; keep the best weights, stop early.

    Args:
        images: validation `WorkingImage`s (those without a lesion count towards the
            false-positive area only).
        config: recipe settings (patch size, overlap, patience, time budget).
        folder: where ``best.weights.h5``, ``best.json`` and ``validation.csv`` go.
        resume: reload ``best.json`` from an interrupted run.

    After training the best weights are loaded back into the model; ``self.rows`` holds one
    dict per epoch and ``self.stop_reason`` says why training ended.
    """

    def __init__(self, images, config: RecipeConfig, folder, *, resume: bool = False) -> None:
        super().__init__()
        self.images = list(images)
        # Flip averaging is left for the final evaluation: four times cheaper per epoch.
        self.config = RecipeConfig.from_dict({**config.to_dict(), "tta": False})
        self.folder = Path(folder)
        self.rows: list[dict] = []
        self.best, self.best_epoch, self.wait = -1.0, 0, 0
        self.stop_reason = "all epochs run"
        self.started = time.time()
        state = self.folder / BEST_STATE
        if resume and state.is_file():
            saved = json.loads(state.read_text())
            self.best, self.best_epoch = saved["val_dice"], saved["epoch"]
            self.started -= saved.get("seconds", 0.0)

    def score(self) -> dict:
        dice, normal_area = [], []
        for work in self.images:
            prob = predict_working(self.model, work, self.config)
            counts = overlap_counts(prob, work.mask, [0.5])[0]
            if work.lesions:
                dice.append(float(dice_from_counts(counts)))
            else:
                normal_area.append(int(counts[1]))
        return {
            "val_dice": float(np.mean(dice)) if dice else 0.0,
            "val_fp_pixels_per_normal": float(np.mean(normal_area)) if normal_area else 0.0,
        }

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", np.nan)), **self.score()}
        row["seconds"] = round(time.time() - self.started, 1)
        self.rows.append(row)
        log = self.folder / VALIDATION_LOG
        with open(log, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if handle.tell() == 0:
                writer.writeheader()
            writer.writerow(row)
        if row["val_dice"] > self.best:
            self.best, self.best_epoch, self.wait = row["val_dice"], epoch + 1, 0
            self.model.save_weights(self.folder / BEST_WEIGHTS)
            state = {"val_dice": self.best, "epoch": self.best_epoch, "seconds": row["seconds"]}
            (self.folder / BEST_STATE).write_text(json.dumps(state))
        else:
            self.wait += 1
        print(
            f"    epoch {epoch + 1}: loss {row['loss']:.4f} val Dice {row['val_dice']:.3f} "
            f"(best {self.best:.3f} at {self.best_epoch}) {row['seconds']:.0f} s",
            flush=True,
        )
        budget = self.config.time_budget_minutes
        if self.wait >= self.config.patience:
            self.stop_reason = f"early stop: no better val Dice for {self.wait} epochs"
            self.model.stop_training = True
        elif budget is not None and row["seconds"] > 60.0 * budget:
            self.stop_reason = f"time budget of {budget:g} min reached"
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        best = self.folder / BEST_WEIGHTS
        if best.is_file():
            self.model.load_weights(best)


def training_start(config: RecipeConfig, seed: int) -> dict:
    """What decides a checkpoint's weights: the recipe's settings (but `RESUMABLE_CHANGES`),
    the sampling seed, and the start weights by their SHA-256 (so a moved run folder is the same
    start, and a pre-training run again with another budget is not; None when the file is not
    there to read).

    Example:
        >>> training_start(RecipeConfig(), seed=0)["start"] is None  # from scratch
        True
    """
    from mammoseg.data.verify import sha256_of

    recipe = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    weights = recipe.pop("init_weights")
    start = None
    if weights is not None:
        start = {"sha256": sha256_of(weights) if Path(weights).is_file() else None}
    return {"recipe": recipe, "seed": int(seed), "start": start}


def check_resumable(folder: str | os.PathLike, config: RecipeConfig, seed: int) -> None:
    """Refuse to continue ``folder``'s checkpoint with another recipe, seed or start than it
    was started with (recorded in ``start.json`` by `train_recipe`). Start weights that are no
    longer there cannot be compared (the checkpoint holds the weights; that is allowed), and a
    checkpoint without the record (written before it existed) is continued unchecked.

    Raises:
        ValueError: naming the folder and every difference.
    """
    path = Path(folder) / START_FILE
    if not path.is_file():
        return
    then = json.loads(path.read_text())
    now = training_start(config, seed)
    diffs = [
        f"{key}: {then['recipe'].get(key)!r} then, {value!r} now"
        for key, value in now["recipe"].items()
        if then["recipe"].get(key) != value
    ]
    if then.get("seed") != now["seed"]:
        diffs.append(f"seed: {then.get('seed')!r} then, {now['seed']!r} now")
    before, after = then.get("start"), now["start"]
    if (before is None) != (after is None):
        diffs.append(
            "start weights: "
            + ("from scratch then, " if before is None else "loaded then, ")
            + ("from scratch now" if after is None else f"{config.init_weights} now")
        )
    elif before is not None and None not in (before["sha256"], after["sha256"]):
        if before["sha256"] != after["sha256"]:
            diffs.append(f"start weights: {config.init_weights} is not the file started from")
    if diffs:
        raise ValueError(
            f"{folder}: its checkpoint was started with other settings ("
            + "; ".join(diffs)
            + "); resume with the same ones, or train into a new folder"
        )


def _start_model(config: RecipeConfig, restoring: bool = False) -> keras.Model:
    """The network to train: ``init_weights`` loaded, unless a checkpoint will replace them."""
    model = build_recipe_model(config)
    if config.init_weights is not None and not restoring:
        print(f"  starting from the weights of {config.init_weights}", flush=True)
        load_initial_weights(model, config.init_weights)
    return model


def train_recipe(
    train_images: Sequence[WorkingImage],
    val_images: Sequence[WorkingImage],
    config: RecipeConfig,
    folder: str | os.PathLike,
    *,
    seed: int = 0,
    strategy: tf.distribute.Strategy | None = None,
    resume: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = 2,
) -> tuple[keras.Model, dict]:
    """Train the recipe's UNet; returns the best model (by validation Dice) and a summary.

    Writes into ``folder``: ``model.keras`` (best weights), ``history.csv``,
    ``validation.csv``, ``tensorboard/`` (via `mammoseg.training.fit_segmenter`), and
    ``start.json`` (`training_start`: what a resume must share with this run).

    Args:
        train_images, val_images: prepared images with truth (`prepare_records`).
        config: recipe settings.
        folder: output folder.
        seed: patch sampling seed.
        strategy: a tf.distribute strategy (None: default).
        resume: continue an interrupted run from its checkpoint.
        callbacks: extra Keras callbacks, run after the whole-image validation (e.g.
            `mammoseg.training.StopAfterEpoch` to simulate an interruption).
        verbose: Keras progress setting.

    Returns:
        (model, {"history", "validation", "best_epoch", "best_val_dice", "epochs_run",
        "stop_reason", "train_seconds"}).

    Raises:
        ValueError: no training image holds a lesion; on ``resume``, a checkpoint started with
            other settings, seed or start weights (`check_resumable`).
    """
    from mammoseg.training import save_json

    if not any(im.lesions for im in train_images):
        raise ValueError("no training image holds a lesion of the chosen kinds")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # A resumed run continues from its checkpoint: the start weights are not needed (or read).
    restoring = resume and (folder / "checkpoint" / "state.json").is_file()
    if restoring:
        check_resumable(folder, config, seed)
    else:
        save_json(folder / START_FILE, training_start(config, seed))
    if not resume:
        for name in (BEST_WEIGHTS, BEST_STATE, VALIDATION_LOG):
            (folder / name).unlink(missing_ok=True)
    sampler = LesionCentredSampler(
        train_images,
        config.patch_size,
        lesion_fraction=config.lesion_fraction,
        batch_size=config.batch_size,
        seed=seed,
        scale_range=config.scale_range,
    )
    validation = WholeImageValidation(val_images, config, folder, resume=resume)
    # A fixed set of validation patches gives Keras a `val_loss` to log beside the whole-image
    # Dice (and keeps history.csv free of the "NA" CSVLogger writes without validation data).
    val_sampler = LesionCentredSampler(
        val_images,
        config.patch_size,
        lesion_fraction=config.lesion_fraction,
        batch_size=config.batch_size,
        augment=False,
        seed=seed,
    )
    val_patches = [val_sampler.batch() for _ in range(VALIDATION_PATCH_BATCHES)]
    val_data = tf.data.Dataset.from_tensor_slices(
        tuple(np.concatenate(parts) for parts in zip(*val_patches))
    ).batch(config.batch_size)
    total_steps = config.epochs * config.steps_per_epoch

    def compile_fn(model):
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, total_steps, alpha=0.05
        )
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=recipe_loss(config))

    started = time.time()
    model, history = fit_segmenter(
        lambda: _start_model(config, restoring=restoring),
        compile_fn,
        sampler.dataset(),
        val_data,
        epochs=config.epochs,
        run_dir=folder,
        strategy=strategy,
        steps_per_epoch=config.steps_per_epoch,
        callbacks=[validation, *callbacks],
        resume=resume,
        verbose=verbose,
    )
    return model, {
        "history": history,
        "validation": validation.rows,
        "best_epoch": validation.best_epoch,
        "best_val_dice": validation.best,
        "epochs_run": len(history.get("loss", [])),
        "stop_reason": validation.stop_reason,
        "train_seconds": round(time.time() - started, 1),
    }


__all__ = [
    "START_FILE",
    "WholeImageValidation",
    "check_resumable",
    "recipe_loss",
    "train_recipe",
    "training_start",
]
