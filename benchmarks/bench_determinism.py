"""What TensorFlow's op determinism costs the recipe: training steps and whole-image prediction.

`tf.config.experimental.enable_op_determinism()` (`mammoseg.training.set_determinism`) makes a
seed give the same weights to the bit; without it two CPU runs drift apart from the first steps
(threaded reductions add in a varying order). This measures its price on the recipe as the
experiment runs it: the default `RecipeConfig` UNet (depth 5, 16 base filters) trained on
160² lesion-centred patches, batch 8, the precision chosen by ``--precision auto``, and the
whole-image prediction (sliding windows with flip averaging) that validation and test use.

Each setting runs in its own process (the setting is global to TensorFlow), the two alternate
(``--repeats``) so load from other processes hits both alike, and the best and median of each
are printed with the machine's load average.

Measured on two cores shared with other runs (bf16, 2 whole images per process):

| run | determinism | ms/step best | ms/step median | s/image best | s/image median |
|---|---|---|---|---|---|
| 20 steps, 3 processes each, load 4.5-6.5 | off | 1025 | 1026 | 0.40 | 0.42 |
| | on | 452 | 826 | 0.46 | 0.47 |
| 30 steps, 4 processes each, load 2.6-4.0 | off | 512 | 545 | 0.36 | 0.41 |
| | on | 508 | 600 | 0.22 | 0.42 |

The step times cluster at about 510 and 680 ms with either setting (the other runs' load), so
the medians swap order between the two runs; the best times are equal: no measurable cost, and
`beyond_mass_segmentation.py` turns determinism on by default.

Run:
    python benchmarks/bench_determinism.py [--steps 20] [--repeats 3] [--images 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SETTINGS = ("off", "on")


def measure(setting: str, steps: int, images: int, seed: int) -> dict:
    """Seconds per training step and per whole image with determinism ``setting``."""
    import keras

    from mammoseg import training
    from mammoseg.data import load_records
    from mammoseg.recipes import LesionCentredSampler, RecipeConfig, prepare_records
    from mammoseg.recipes.inference import predict_working
    from mammoseg.recipes.network import build_recipe_model
    from mammoseg.recipes.train import recipe_loss

    keras.utils.set_random_seed(seed)
    if setting == "on":  # a fresh process starts with it off
        training.set_determinism(enabled=True)
    precision = training.set_precision("auto")
    config = RecipeConfig()
    with tempfile.TemporaryDirectory() as folder:
        records = load_records("phantom", n_images=max(images, 4), size=1024, root=folder)
        records = [r for r in records if r.has_lesion(config.kinds)][:images] or records[:images]
        work = prepare_records(records, config)
    sampler = LesionCentredSampler(
        work,
        config.patch_size,
        lesion_fraction=config.lesion_fraction,
        batch_size=config.batch_size,
        seed=seed,
        scale_range=config.scale_range,
    )
    model = build_recipe_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=recipe_loss(config))
    data = sampler.dataset()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # tracing and warm-up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    step_seconds = (time.perf_counter() - start) / steps
    predict_working(model, work[0], config)  # warm-up of the inference function
    start = time.perf_counter()
    for image in work:
        predict_working(model, image, config)
    image_seconds = (time.perf_counter() - start) / len(work)
    return {
        "setting": setting,
        "precision": precision,
        "step": step_seconds,
        "image": image_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--images", type=int, default=2, help="timed whole images (1024² phantom)")
    parser.add_argument("--repeats", type=int, default=3, help="processes per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.images, args.seed)))
        return

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    results: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    loads = []
    for repeat in range(args.repeats):
        for setting in SETTINGS if repeat % 2 == 0 else SETTINGS[::-1]:
            loads.append(os.getloadavg()[0])
            command = [
                sys.executable,
                __file__,
                f"--child={setting}",
                f"--steps={args.steps}",
                f"--images={args.images}",
                f"--seed={args.seed}",
            ]
            output = subprocess.run(command, capture_output=True, text=True, env=env)
            if output.returncode != 0:
                raise SystemExit(f"determinism {setting} failed:\n{output.stderr[-3000:]}")
            row = json.loads(output.stdout.strip().splitlines()[-1])
            results[setting].append(row)
            print(
                f"  repeat {repeat + 1} determinism {setting:>3}: "
                f"{1000 * row['step']:.0f} ms/step, {row['image']:.2f} s/image",
                flush=True,
            )

    precision = results["off"][0]["precision"]
    print(
        f"\nrecipe default UNet, batch 8 of 160² patches, precision {precision}; "
        f"{args.steps} steps and {args.images} whole 1024² image(s) per process, "
        f"{args.repeats} process(es) per setting; load average {min(loads):.1f}-{max(loads):.1f} "
        f"on {os.cpu_count()} CPUs\n"
    )
    print("| determinism | ms/step best | ms/step median | s/image best | s/image median |")
    print("|---|---|---|---|---|")
    for setting in SETTINGS:
        steps = [1000 * r["step"] for r in results[setting]]
        images = [r["image"] for r in results[setting]]
        print(
            f"| {setting} | {min(steps):.0f} | {statistics.median(steps):.0f} | "
            f"{min(images):.2f} | {statistics.median(images):.2f} |"
        )
    ratio = statistics.median(r["step"] for r in results["on"]) / statistics.median(
        r["step"] for r in results["off"]
    )
    print(f"\ntraining step, median on / off: {ratio:.2f}")


if __name__ == "__main__":
    main()
