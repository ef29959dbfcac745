"""Every section of the paper in turn, and one summary table beside the paper's results.

Each section runs as its own process (a failure in one does not stop the others) with the same
options, into ``<output-dir>/<script name>/``; the summary is ``<output-dir>/summary.md``.

    python experiments/run_all.py --quick          # a minute or two: every script, tiny
    python experiments/run_all.py                  # the default runs, on the built-in data
    python experiments/run_all.py --resume         # continue where an interrupted run stopped
    python experiments/run_all.py --quick --seeds 0 1 --protocol authors

``--kinds`` and ``--protocol`` go to the paper's sections; the mass recipe ("beyond") keeps
its own target. ``--seeds`` and every other common option go to every script (each runs once
per seed); ``--weights`` to V.F and ``--yaroslav-weights`` to V.E, so the whole study, transfer
included, runs from one command:

    python experiments/run_all.py --weights coco:mask_rcnn_coco.h5 \
        --weights imagenet:resnet50_imagenet.h5 --yaroslav-weights s10_YaroslavNet.h5
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import common

from mammoseg import training

SECTIONS = [
    ("IV.A", "section_iva_logistic_regression.py"),
    ("V.A", "section_va_preliminary_regression.py"),
    ("V.B", "section_vb_semantic_segmentation.py"),
    ("V.C", "section_vc_weighted_loss.py"),
    ("V.D", "section_vd_augmentation_oversampling.py"),
    ("V.E", "section_ve_data_vs_model.py"),
    ("V.F", "section_vf_mask_rcnn.py"),
    ("beyond", "beyond_mass_segmentation.py"),
]
HERE = Path(__file__).resolve().parent
# args.mode → the option that selects it in each section script
MODE_OPTIONS = {"quick": ["--quick"], "default": [], "paper": ["--paper-scale"]}


def main(argv=None) -> None:
    parser = common.build_parser(__doc__)
    parser.add_argument("--only", nargs="+", default=None, help="sections to run, e.g. V.B V.C")
    parser.add_argument(
        "--weights",
        action="append",
        default=None,
        help="to V.F: coco:PATH | imagenet:PATH | none (twice: both starts)",
    )
    parser.add_argument(
        "--yaroslav-weights", type=Path, default=None, help="to V.E: s10_YaroslavNet.h5"
    )
    args = parser.parse_args(argv)
    root = Path(args.output_dir or common.REPO / "runs" / "all")
    settings = {
        "section": "all",
        "data": args.data,
        "seed": args.seed,
        "deterministic": bool(args.deterministic),
        "seeds": args.seeds,
        "kinds": args.kinds,
        "protocol": args.protocol,
        "mode": args.mode,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "weights": args.weights,
        "yaroslav_weights": str(args.yaroslav_weights) if args.yaroslav_weights else None,
    }
    common.prepare_run_folder(root, settings, resume=args.resume, overwrite=args.overwrite)
    common.acquire_lock(root)
    passthrough = [
        f"--data={args.data}",
        f"--seed={args.seed}",
        f"--precision={args.precision}",
        f"--strategy={args.strategy}",
    ]
    passthrough += MODE_OPTIONS[args.mode]
    passthrough += ["--resume"] if args.resume else []
    passthrough += ["--overwrite"] if args.overwrite else []
    passthrough += ["--deterministic"] if args.deterministic else []
    passthrough += [f"--epochs={args.epochs}"] if args.epochs else []
    passthrough += ["--seeds", *map(str, args.seeds)] if args.seeds else []
    passthrough += [f"--max-steps={args.max_steps}"] if args.max_steps else []
    target = [f"--kinds={args.kinds}", f"--protocol={args.protocol}"]
    own_options = {
        "V.E": [f"--yaroslav-weights={args.yaroslav_weights}"] if args.yaroslav_weights else [],
        "V.F": [f"--weights={w}" for w in args.weights or ()],
    }

    rows, status = [], {}
    for section, script in SECTIONS:
        if args.only and section not in args.only:
            continue
        path = HERE / script
        if not path.is_file():
            status[section] = "not available in this version"
            continue
        out = root / path.stem
        done = args.resume and (out / "report.md").is_file()
        started = time.time()
        if done:
            code = 0
            print(f"== {section}: complete, reusing {out}")
        else:
            print(f"== {section}: {script}", flush=True)
            command = [sys.executable, str(path), f"--output-dir={out}", *passthrough]
            command += target if section != "beyond" else []
            command += own_options.get(section, [])
            code = subprocess.call(command)
        seconds = time.time() - started
        metrics = out / "metrics.json"
        if code != 0 or not metrics.is_file():
            status[section] = f"failed (exit code {code}); see {out}"
            continue
        status[section] = f"ok ({seconds:.0f} s)" if not done else "ok (reused)"
        for finding in json.loads(metrics.read_text()).get("findings", []):
            rows.append((section, *(finding[k] for k in ("what", "paper", "ours", "verdict"))))

    lines = [
        "# mammoseg: every section of the paper",
        "",
        f"Data `{args.data}`, mode `{args.mode}`, protocol `{args.protocol}` and kinds "
        f"`{args.kinds}` (the sections; the mass recipe keeps masses and our protocol), "
        + (
            f"seeds {', '.join(map(str, args.seeds))} (verdicts only where the seeds agree)"
            if args.seeds
            else f"seed {args.seed} (one seed)"
        )
        + ". Each section's own report is in its folder.",
        "",
        "| section | status |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in status.items()],
        "",
        "| section | what | paper | ours | verdict |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(str(c) for c in row)} |" for row in rows],
        "",
    ]
    summary = root / "summary.md"
    training.write_text_atomic(summary, "\n".join(lines))
    print(f"summary: {summary}")
    failed = [k for k, v in status.items() if v.startswith("failed")]
    if failed:
        raise SystemExit(f"sections failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
