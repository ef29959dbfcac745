"""Section V.A: predicting a tumour's (x, y, radius) with a feed-forward network.

The paper (V.A): a flattened 1024² image → Dense 128-64-32-16-3 with ReLU at every layer
(the output included), trained with MSE, MAE or logcosh, output [0.0, 0.0, 0.0] for every
validation image. The authors blamed the million inputs; the network's last ReLU is enough:
once its pre-activations turn negative for every input the output is exactly 0 and no gradient
flows back. This script trains the faithful variant (raw 0-255 inputs, ReLU output, logcosh)
and a corrected one (inputs scaled to [0, 1], He initialisation, sigmoid output on targets
normalised to [0, 1]) on the images with a lesion of the chosen ``--kinds`` (every kind by
default, as the paper's "tumour"), and compares both with the trivial predictor that always
answers the mean training circle.

    python experiments/section_va_preliminary_regression.py [--quick | --paper-scale]
"""

from __future__ import annotations

from dataclasses import replace

import common
import keras
import numpy as np

from mammoseg.data.records import image_shape
from mammoseg.models import build_model
from mammoseg.models.feedforward import dead_unit_fraction, encode_circle

SECTION, TITLE = "V.A", "Preliminary experiment: regressing (x, y, radius)"
# The authors' regressor trained at batch 32 (facts.md §1), under either protocol.
BATCH_SIZE = 32
LABELS = {"paper": "faithful: ReLU output, raw inputs", "corrected": "corrected: sigmoid output"}


def circles(run: common.Run, split: str):
    """Images with a lesion of the run's kinds and their first such circle, encoded as
    (x/W, y/H, r/max(H, W))."""
    images, _ = run.arrays(split)
    rows, targets = [], []
    for index, record in enumerate(run.splits()[split]):
        chosen = [
            les
            for les in record.lesions
            if (run.kinds is None or les.kind in run.kinds)
            and les.center is not None
            and les.radius is not None
        ]
        if chosen:
            rows.append(index)
            shape = image_shape(record)
            targets.append(encode_circle(chosen[0].center, chosen[0].radius, shape))
    return images[rows], np.asarray(targets, np.float32).reshape(-1, 3)


def train_variant(run: common.Run, variant: str, folder) -> dict:
    x_train, y_train = circles(run, "train")
    x_val, y_val = circles(run, "val")
    if len(x_train) == 0:
        raise ValueError(f"no training image has a lesion ({run.args.kinds}) with a circle")
    scale = 255.0 if variant == "paper" else 1.0  # the authors fed uint8 intensities
    shape = x_train.shape[1:]
    model = build_model("feedforward_regressor", input_shape=shape, variant=variant)
    run.learning_rates[folder.name] = 1e-3
    model.compile(keras.optimizers.Adam(1e-3), loss=keras.losses.LogCosh())
    history = model.fit(
        x_train * scale,
        y_train,
        validation_data=(x_val * scale, y_val) if len(x_val) else None,
        # --max-steps: one epoch of N steps (the paper-scale path on a CPU)
        epochs=1 if run.args.max_steps else max(run.scale.epochs * 5, 2),
        steps_per_epoch=run.args.max_steps,
        batch_size=min(run.scale.batch_size, len(x_train)),
        verbose="auto",
        callbacks=[keras.callbacks.CSVLogger(str(folder / "history.csv"))],
    )
    model.save(folder / "model.keras")
    result = {"history": {k: [float(v) for v in vals] for k, vals in history.history.items()}}
    mean_circle = y_train.mean(axis=0)
    for split, (x, y) in {"val": (x_val, y_val), "test": circles(run, "test")}.items():
        if len(x) == 0:
            result[split] = {"n_images": 0}
            continue
        pred = model.predict(x * scale, verbose=0)
        result[split] = {
            "n_images": len(x),
            "all_zero_share": float(np.mean(np.all(pred == 0.0, axis=1))),
            "mean_prediction": pred.mean(axis=0).tolist(),
            "mae": float(np.abs(pred - y).mean()),
            "mae_mean_circle_baseline": float(np.abs(mean_circle - y).mean()),
        }
    result["dead_units"] = dead_unit_fraction(model, x_train[:64] * scale)
    return result


def main(argv=None) -> None:
    args = common.build_parser(__doc__).parse_args(argv)
    scale = common.SCALES[args.mode]
    run = common.Run(SECTION, TITLE, args, scale)
    run.scale = replace(run.scale, batch_size=BATCH_SIZE)  # the header shows what ran
    for variant in LABELS:
        run.sub_run(variant, lambda folder, v=variant: train_variant(run, v, folder))
    findings = []
    for variant, label in LABELS.items():
        result = run.results[variant]
        if result.get("status") != "ok" or "all_zero_share" not in result.get("test", {}):
            findings.append((label, "—", "failed: " + result.get("error", "no test images"), "—"))
            continue
        m = result["test"]
        dead = result["dead_units"].get("circle")
        dead_text = "n/a (no ReLU output)" if dead is None or np.isnan(dead) else f"{dead:.2f}"
        ours = (
            f"test: all-zero outputs {m['all_zero_share']:.2f}, MAE {m['mae']:.3f} "
            f"(mean-circle baseline {m['mae_mean_circle_baseline']:.3f}); dead output units "
            f"{dead_text}"
        )
        if variant == "paper":
            paper = "[0, 0, 0] for every validation image"
            text = "reproduced" if m["all_zero_share"] >= 0.9 else "not reproduced"
        else:
            paper = "not tried"
            beats = m["mae"] < m["mae_mean_circle_baseline"]
            text = "beats the mean circle" if beats else "no better than the mean circle"
        findings.append((label, paper, ours, text))
    notes = (
        "Targets are (x / W, y / H, radius / max(H, W)) of the first lesion (of the chosen kinds) "
        "with a circle on each image that has one; batch size 32 (the authors'), Adam 1e-3. "
        "'Dead output units' is the share of the 3 output ReLUs that are 0 for every training "
        "image: at 1.0 the network can only ever answer [0, 0, 0]."
    )
    run.write(findings, notes)


if __name__ == "__main__":
    main()
