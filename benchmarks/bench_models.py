"""Training and prediction speed and peak memory of every builder, float32 beside mixed_bfloat16.

Each (model, size, policy) runs in its own Python process, so peak memory (maximum resident set
size) belongs to that configuration alone and no TensorFlow state leaks between runs. On a CPU
with AVX-512 bf16 the paper's UNet trains about 3× faster under ``mixed_bfloat16`` than in
float32 (facts.md §7); the output layers stay float32 in every builder.

Usage:
    python benchmarks/bench_models.py                        # every model, 256² and 512²
    python benchmarks/bench_models.py --models unet --sizes 256 --steps 3
    python benchmarks/bench_models.py --json results.json    # also save the raw numbers

Numbers are images per second at batch ``--batch-size`` after ``--warmup`` untimed steps; on a
shared machine they are noisy, so compare columns of one run, not runs.

Share of peak (issue #19): a training image costs about 3x the forward pass's FLOPs (forward,
gradient by input, gradient by weight), counted from every Conv2D, Conv2DTranspose and Dense
layer (2 FLOPs a multiply-add). The peak is cores x clock (``cpu MHz`` of /proc/cpuinfo) x
FLOPs per cycle per core: 1,024 bf16 with AMX (``amx_bf16``: one 16x32 by 32x16 tile product),
128 bf16 with AVX-512 BF16 (two 512-bit ``vdpbf16ps`` units), 64 float32 with AVX-512 (two
FMA units). ``--intra-threads`` / ``--inter-threads`` set TensorFlow's thread pools in each
child (0: TensorFlow's default); environment variables (OMP_NUM_THREADS, KMP_*) pass through.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODELS = (
    "logistic_regression",
    "feedforward_regressor",
    "shallow_cnn",
    "unet",
    "yaroslav_net",
    "yaroslav_segmenter",
)
POLICIES = ("float32", "mixed_bfloat16")


def _model_kwargs(name: str, size: int) -> dict:
    kwargs = {"input_shape": (size, size, 1)}
    if name == "feedforward_regressor":
        kwargs["variant"] = "corrected"
    return kwargs


def peak_flops(policy: str) -> tuple[float, str]:
    """(FLOP/s, what) the CPU can do at most for ``policy``'s compute type, from /proc/cpuinfo."""
    text = open("/proc/cpuinfo").read()
    flags = set(next(line for line in text.splitlines() if line.startswith("flags")).split())
    mhz = float(
        next(line for line in text.splitlines() if line.startswith("cpu MHz")).split(":")[1]
    )
    cores = os.cpu_count() or 1
    if policy == "mixed_bfloat16" and "amx_bf16" in flags:
        per_cycle, what = 1024, "AMX bf16"
    elif policy == "mixed_bfloat16" and "avx512_bf16" in flags:
        per_cycle, what = 128, "AVX-512 bf16"
    elif "avx512f" in flags:
        per_cycle, what = 64, "AVX-512 fp32"
    else:
        per_cycle, what = 32, "AVX2 fp32"
    return cores * mhz * 1e6 * per_cycle, f"{what}, {cores} cores x {mhz:.0f} MHz"


def training_flops_per_image(model) -> float:
    """About 3x the forward FLOPs of the model's Conv2D, Conv2DTranspose and Dense layers."""
    import math

    import keras

    forward = 0.0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        if isinstance(layer, keras.layers.Conv2DTranspose):
            positions = math.prod(layer.input.shape[1:3])
        elif isinstance(layer, keras.layers.Conv2D):
            positions = math.prod(layer.output.shape[1:3])
        elif isinstance(layer, keras.layers.Dense):
            positions = math.prod(layer.output.shape[1:-1])
        else:
            continue
        forward += 2.0 * math.prod(kernel.shape) * positions
    return 3.0 * forward


def run_one(name: str, size: int, policy: str, steps: int, warmup: int, batch_size: int) -> dict:
    """Build, compile and time one configuration in this process; return its numbers."""
    import keras
    import numpy as np

    from mammoseg import models

    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = models.build_model(name, **_model_kwargs(name, size))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch_size, size, size, 1)).astype("float32")
    out_shape = (batch_size,) + tuple(model.output_shape[1:])
    if name in ("shallow_cnn", "yaroslav_net"):
        y = np.eye(out_shape[-1], dtype="float32")[rng.integers(0, out_shape[-1], out_shape[:-1])]
        loss = "categorical_crossentropy"
    elif name == "feedforward_regressor":
        y, loss = rng.uniform(size=out_shape).astype("float32"), "mse"
    else:
        y, loss = (rng.uniform(size=out_shape) > 0.9).astype("float32"), "binary_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss)

    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    train_seconds = time.perf_counter() - start

    for _ in range(warmup):
        model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    predict_seconds = time.perf_counter() - start

    flops = training_flops_per_image(model)
    peak, peak_what = peak_flops(policy)
    train_rate = batch_size * steps / train_seconds
    return {
        "model": name,
        "size": size,
        "policy": policy,
        "params": int(model.count_params()),
        "train_tflop_per_image": flops / 1e12,
        "train_tflop_per_s": train_rate * flops / 1e12,
        "share_of_peak": train_rate * flops / peak,
        "peak": peak_what,
        "train_images_per_s": train_rate,
        "predict_images_per_s": batch_size * steps / predict_seconds,
        # ru_maxrss is in KiB on Linux.
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_child(name: str, size: int, policy: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, os.path.abspath(__file__), "--single", f"{name},{size},{policy}",
        "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--batch-size", str(args.batch_size),
        "--intra-threads", str(args.intra_threads), "--inter-threads", str(args.inter_threads),
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"model": name, "size": size, "policy": policy, "error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _percent(row: dict, width: int) -> str:
    if "share_of_peak" not in row:
        return f"{'-':>{width}}"
    return f"{100 * row['share_of_peak']:>{width - 1}.1f}%"


def format_table(results: list[dict]) -> str:
    """One row per (model, size): float32 beside mixed_bfloat16 and the speed-up."""
    by_key = {(r["model"], r["size"], r["policy"]): r for r in results}
    header = (
        f"{'model':<22} {'size':>5} {'params':>11} | {'train f32':>9} {'train bf16':>10} "
        f"{'speed-up':>8} | {'pred f32':>8} {'pred bf16':>9} | {'MB f32':>7} {'MB bf16':>7} | "
        f"{'TFLOP/s bf16':>12} {'% peak bf16':>11} {'% peak f32':>10}"
    )
    lines = [header, "-" * len(header)]
    seen = []
    for r in results:
        if (r["model"], r["size"]) not in seen:
            seen.append((r["model"], r["size"]))
    for model, size in seen:
        f32 = by_key.get((model, size, "float32"), {})
        bf16 = by_key.get((model, size, "mixed_bfloat16"), {})

        def cell(row: dict, key: str, width: int, fmt: str = ".2f") -> str:
            if "error" in row:
                return f"{'error':>{width}}"
            return f"{row[key]:>{width}{fmt}}" if key in row else f"{'-':>{width}}"

        speedup = "-"
        if "train_images_per_s" in f32 and "train_images_per_s" in bf16:
            speedup = f"{bf16['train_images_per_s'] / f32['train_images_per_s']:.2f}x"
        params = (f32 or bf16).get("params", "-")
        lines.append(
            f"{model:<22} {size:>5} {params:>11} | {cell(f32, 'train_images_per_s', 9)} "
            f"{cell(bf16, 'train_images_per_s', 10)} {speedup:>8} | "
            f"{cell(f32, 'predict_images_per_s', 8)} {cell(bf16, 'predict_images_per_s', 9)} | "
            f"{cell(f32, 'peak_memory_mb', 7, '.0f')} {cell(bf16, 'peak_memory_mb', 7, '.0f')} | "
            f"{cell(bf16, 'train_tflop_per_s', 12, '.3f')} "
            f"{_percent(bf16, 11)} {_percent(f32, 10)}"
        )
    peaks = sorted({r["peak"] for r in results if "peak" in r})
    if peaks:
        lines.append("peak: " + "; ".join(peaks))
    for r in results:
        if "error" in r:
            lines.append(f"error in {r['model']} {r['size']} {r['policy']}: {r['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--intra-threads", type=int, default=0, help="TF intra-op threads")
    parser.add_argument("--inter-threads", type=int, default=0, help="TF inter-op threads")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # "model,size,policy": child mode
    args = parser.parse_args(argv)
    for option in ("steps", "batch_size"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1")

    if args.single:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)
        name, size, policy = args.single.split(",")
        result = run_one(name, int(size), policy, args.steps, args.warmup, args.batch_size)
        print(json.dumps(result))
        return

    results = []
    for name in args.models:
        for size in args.sizes:
            for policy in args.policies:
                result = _run_child(name, size, policy, args)
                results.append(result)
                rate = result.get("train_images_per_s")
                status = f"{rate:.2f} train img/s" if rate else result.get("error")
                print(f"  {name} {size} {policy}: {status}", file=sys.stderr, flush=True)
    print(f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"threads intra {args.intra_threads} inter {args.inter_threads} (0: default); "
          f"load average {os.getloadavg()[0]:.1f}; images per second (train, predict), "
          "peak resident memory (MB), training FLOP/s and share of the CPU's peak")  # fmt: skip
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
