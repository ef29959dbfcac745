"""What the experiment reports are made of: metrics, verdicts, figures.

`experiments/common.py` re-exports the helpers the scripts use (`common.fmt`, ...).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def make_figures(
    run_dir: Path, images, masks, results: dict, labels: dict[str, str], triplets=()
) -> list[str]:
    """Fig. 1 (a sample), Fig. 4 (mean IoU every half epoch), loss curves and Fig. 3
    triplets for the sub-runs named in ``triplets``; returns the file names."""
    from mammoseg import plots

    pick = showcase(masks)
    plots.plot_sample(images[pick[0], ..., 0], masks[pick[0], ..., 0], run_dir / "fig1_sample.png")
    figures = ["fig1_sample.png"]
    ok = {k: v for k, v in results.items() if v.get("status") == "ok" and "history" in v}
    if not ok:
        return figures
    curves = {
        labels.get(k, k): (
            [r["epoch"] for r in v["half_epoch"]],
            [r["mean_iou_both_classes"] for r in v["half_epoch"]],
        )
        for k, v in ok.items()
    }
    eval_images = next((v["half_epoch"][0]["n_images"] for v in ok.values() if v["half_epoch"]), 0)
    plots.plot_curves(
        curves,
        run_dir / "fig4_mean_iou.png",
        "mean IoU (both classes), pooled over val images",
        f"Pooled mean IoU of {eval_images} val images every half epoch (Fig. 4's axis)",
        ylim=(0, 1.02),
    )
    figures.append("fig4_mean_iou.png")
    authors = {
        labels.get(k, k): (
            [r["epoch"] for r in v["half_epoch"] if "authors_mean_iou" in r],
            [r["authors_mean_iou"] for r in v["half_epoch"] if "authors_mean_iou" in r],
        )
        for k, v in ok.items()
    }
    if any(x for x, _ in authors.values()):
        plots.plot_curves(
            authors,
            run_dir / "fig4_authors_mean_iou.png",
            "authors' mean IoU (training log)",
            "The authors' streamed, integer-cast mean IoU every half epoch (Fig. 4's metric)",
            ylim=(0, 1.02),
        )
        figures.append("fig4_authors_mean_iou.png")
    loss_curves = {
        labels.get(k, k): (list(range(1, len(v["history"]["loss"]) + 1)), v["history"]["loss"])
        for k, v in ok.items()
        if v["history"].get("loss")
    }
    plots.plot_curves(
        loss_curves,
        run_dir / "loss_curves.png",
        "training loss",
        "Training loss per epoch",
        log_y=None,
    )
    figures.append("loss_curves.png")
    for name in triplets:
        path = run_dir / name / "val_probabilities.npy"
        if name not in ok or not path.is_file():
            continue
        probs = np.load(path).astype(np.float32)
        plots.plot_triplets(
            images[pick, ..., 0],
            masks[pick, ..., 0],
            probs,
            run_dir / f"fig3_{name}.png",
            titles=[labels.get(name, name)] * len(pick),
        )
        figures.append(f"fig3_{name}.png")
    return figures


def collapse_row(
    result: dict, label: str, paper: str, *, image_size: int, overlap_loss: bool = False
) -> tuple[str, str, str, str]:
    """One findings row: the test metrics and whether the model collapsed to empty masks."""
    if result.get("status") == "skipped":
        return (label, paper, "not run (--sub-runs)", "—")
    if result.get("status") != "ok":
        return (label, paper, "failed: " + result.get("error", "not run"), "—")
    m = result["test"]
    ours = (
        f"test: empty {fmt(m['empty_prediction_rate'], 2)}, mean IoU "
        f"{fmt(m['mean_iou_both_classes'])}, fg IoU {fmt(m['foreground_iou'])}, Dice/img "
        f"{fmt(m['dice_per_image_mean'])}, "
        f"predicted share {fmt(m['predicted_positive_share'], 4)}"
    )
    empty = m["empty_prediction_rate"]
    dice = m["dice_per_image_mean"] or 0.0
    if overlap_loss:
        if empty is not None and empty < 0.5 and dice > 0.1:
            text = "avoids the collapse"
        elif m["predicted_positive_share"] > 0.5:
            text = "floods the image at this budget (no collapse, no segmentation)"
        else:
            text = "does not avoid the collapse at this budget"
        return (label, paper, ours, text)
    per_image = m["predicted_positive_share"] * image_size**2
    if empty is not None and empty >= 0.9:
        text = "reproduced: empty masks"
    elif dice < 0.01 and m["predicted_positive_share"] < 1e-3:
        text = f"reproduced: near-empty masks ({per_image:.1f} px per image, Dice < 0.01)"
    elif m["predicted_positive_share"] > 0.5:
        text = "not reproduced: floods the image with tumour"
    else:
        text = "not reproduced: predicts non-empty masks"
    return (label, paper, ours, text)


def segmentation_metrics(probabilities: np.ndarray, masks: np.ndarray, threshold: float = 0.5):
    """The paper's metric beside the ones that expose an empty prediction, named as in
    `mammoseg.metrics`."""
    from mammoseg import metrics

    pred = np.asarray(probabilities).reshape(len(probabilities), *masks.shape[1:3]) >= threshold
    truth = np.asarray(masks).reshape(pred.shape) > 0
    has_lesion = truth.reshape(len(truth), -1).any(axis=1)
    dice = metrics.dice_per_image(truth, pred)
    return {
        "mean_iou_both_classes": float(metrics.mean_iou_both_classes(truth, pred)),
        "foreground_iou": float(metrics.foreground_iou(truth, pred)),
        "dice_per_image_mean": float(np.mean(dice[has_lesion])) if has_lesion.any() else None,
        "dice_pooled": float(metrics.dice_pooled(truth, pred)),
        "empty_prediction_rate": float(metrics.empty_prediction_rate(truth, pred)),
        "predicted_positive_share": float(pred.mean()),
        "n_images": int(len(pred)),
    }


def showcase(masks: np.ndarray, n: int = 3) -> list[int]:
    """Indices of up to ``n`` images to show: those with a lesion first, largest first."""
    areas = np.asarray(masks).reshape(len(masks), -1).sum(axis=1, dtype=np.int64)
    order = [int(i) for i in np.argsort(-areas, kind="stable")]
    return order[:n]


SMOKE_TEST = "smoke test: no verdict"


def header(setup: dict) -> str:
    """The report's first line: what ran (data, protocol, kinds, batch, learning rate, precision).

    Example:
        >>> header({"data": "phantom", "mode": "quick", "protocol": "ours", "kinds": "all",
        ...         "batch_size": 4, "learning_rates": {"a": 1e-3}, "precision": "fp32",
        ...         "scale": {"image_size": 64, "epochs": 1}, "strategy": "default",
        ...         "replicas": 1})[:60]
        'Data `phantom`, mode `quick`, protocol **ours** (patient split'
    """
    protocol = setup["protocol"]
    protocol_text = {
        "ours": "protocol **ours** (patient split, every chosen lesion drawn)",
        "authors": "protocol **authors** (their per-line split that shares images between "
        "train and test, last circle only / CBIS masks == 255 after resizing; their batch 1 "
        "and float32 in the training networks)",
    }[protocol]
    kinds = {"all": "every lesion kind", "mass": "masses only"}[setup["kinds"]]
    rates = sorted(set(setup.get("learning_rates", {}).values()))
    rate_text = ", ".join(f"{r:g}" for r in rates) if rates else "see the notes"
    return (
        f"Data `{setup['data']}`, mode `{setup['mode']}`, {protocol_text}; lesions drawn: "
        f"{kinds} (`--kinds {setup['kinds']}`); images {setup['scale']['image_size']}², "
        f"{setup['scale']['epochs']} epoch(s), batch size {setup['batch_size']}, learning rate "
        f"{rate_text}, precision {setup['precision']}, strategy `{setup['strategy']}` "
        f"({setup['replicas']} replica(s))."
    )


def spread(values) -> dict:
    """Mean, sample standard deviation (ddof 1; 0 for one value), min, max and count.

    Example:
        >>> spread([1.0, 2.0, 3.0])
        {'mean': 2.0, 'std': 1.0, 'min': 1.0, 'max': 3.0, 'n': 3}
    """
    array = np.asarray(list(values), np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {
        "mean": float(array.mean()),
        "std": std,
        "min": float(array.min()),
        "max": float(array.max()),
        "n": int(len(array)),
    }


def flatten_numbers(result: dict, prefix: str = "") -> dict[str, float]:
    """Every number of a sub-run's result under a dotted key; lists, curves and the history
    are left out (``seconds`` too: time is not a result).

    Example:
        >>> flatten_numbers({"test": {"dice": 0.5, "n": 3}, "history": {"loss": [1.0]}})
        {'test.dice': 0.5, 'test.n': 3}
    """
    out: dict[str, float] = {}
    for key, value in result.items():
        if key in ("history", "half_epoch", "seconds"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_numbers(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if np.isfinite(value):
                out[name] = value
    return out


def agreed_verdict(verdicts: list[str]) -> str:
    """One verdict for several seeds: theirs when they agree, else "undecided".

    Seeds agree when their verdicts are equal, or equal up to the detail after a colon
    ("reproduced: empty masks" and "reproduced: near-empty masks" agree on "reproduced").

    Example:
        >>> agreed_verdict(["reproduced: empty masks", "reproduced: near-empty masks (2 px)"])
        'reproduced (every seed)'
        >>> agreed_verdict(["reproduced", "not reproduced"])
        'undecided (seeds disagree: reproduced / not reproduced)'
    """
    if len(set(verdicts)) == 1:
        return verdicts[0]
    heads = {v.split(":")[0].strip() for v in verdicts}
    if len(heads) == 1:
        return f"{heads.pop()} (every seed)"
    return "undecided (seeds disagree: " + " / ".join(verdicts) + ")"


def aggregate_seeds(per_seed: dict[int, dict]) -> dict:
    """The metrics.json of several seeds' runs → one: the spread of every number and the
    findings with their agreed verdict.

    Args:
        per_seed: seed → that run's metrics.json (``setup``, ``findings``, ``runs``).

    Returns:
        {"setup" (the first seed's, with ``seeds``), "findings" (what, paper, ours: the
        seeds' own texts, verdict: `agreed_verdict`, per_seed_verdicts), "runs" (sub-run →
        dotted metric → `spread` with the per-seed ``values``), "failed" (seed → sub-runs)}.
    """
    seeds = sorted(per_seed)
    first = per_seed[seeds[0]]
    setup = {**first["setup"], "seeds": seeds}
    setup.pop("seed", None)
    quick = setup.get("mode") == "quick"
    findings = []
    for index, row in enumerate(first["findings"]):
        rows = [
            per_seed[s]["findings"][index] for s in seeds if index < len(per_seed[s]["findings"])
        ]
        verdicts = [r["verdict"] for r in rows]
        findings.append(
            {
                "what": row["what"],
                "paper": row["paper"],
                "ours": "<br>".join(f"seed {s}: {r['ours']}" for s, r in zip(seeds, rows)),
                "verdict": SMOKE_TEST if quick else agreed_verdict(verdicts),
                "per_seed_verdicts": verdicts,
            }
        )
    runs: dict[str, dict] = {}
    failed: dict[int, list[str]] = {}
    for seed in seeds:
        for name, result in per_seed[seed]["runs"].items():
            if result.get("status") != "ok":
                failed.setdefault(seed, []).append(name)
                continue
            for key, value in flatten_numbers(result).items():
                runs.setdefault(name, {}).setdefault(key, {})[seed] = value
    spreads = {
        name: {
            key: {**spread(values.values()), "values": {str(s): v for s, v in values.items()}}
            for key, values in metrics.items()
        }
        for name, metrics in runs.items()
    }
    return {"setup": setup, "findings": findings, "runs": spreads, "failed": failed}


def seeds_report(section: str, title: str, summary: dict, *, failed_seeds=(), figures=()) -> str:
    """report.md of a ``--seeds`` run from `aggregate_seeds`' summary: the findings with the
    seeds' agreed verdicts, then every test metric of every sub-run as mean ± std and min–max
    (validation metrics are in metrics.json)."""
    setup = summary["setup"]
    seeds = setup["seeds"]
    lines = [
        f"# Section {section}: {title}",
        "",
        header(setup),
        f"Seeds {', '.join(str(s) for s in seeds)}: each sub-run once per seed with "
        "deterministic ops, on the same split (split seed "
        f"{setup.get('split_seed', seeds[0])}) {setup.get('split_sizes', {})}; wall time "
        f"{setup['seconds']:.0f} s. A verdict is given only where every seed gives it; "
        "std is the sample standard deviation over the seeds.",
        "",
        "| what | paper | ours (per seed) | verdict |",
        "|---|---|---|---|",
        *[
            f"| {f['what']} | {f['paper']} | {f['ours']} | {f['verdict']} |"
            for f in summary["findings"]
        ],
        "",
    ]
    if failed_seeds or summary["failed"]:
        lines += ["## Failed", ""]
        lines += [f"- seed {s}: the run did not finish" for s in failed_seeds]
        lines += [f"- seed {s}: sub-runs {', '.join(n)}" for s, n in summary["failed"].items()]
        lines += [""]
    lines += [
        f"## Every metric over {len(seeds)} seeds (test split; val in metrics.json)",
        "",
        "| sub-run | metric | mean ± std | min–max | seeds |",
        "|---|---|---|---|---|",
    ]
    for name, metrics in summary["runs"].items():
        for key, stats in metrics.items():
            if key.startswith("val."):
                continue
            mean_std, low_high = spread_text(stats)
            lines.append(f"| {name} | {key} | {mean_std} | {low_high} | {stats['n']} |")
    lines += [
        "",
        "Each seed's own report: " + ", ".join(f"[seed {s}](seed_{s}/report.md)" for s in seeds),
        "",
    ]
    if figures:
        lines += [f"## Figures of seed {seeds[0]}", ""]
        lines += [f"![{f}](seed_{seeds[0]}/{f})" for f in figures] + [""]
    return "\n".join(lines)


# The columns of a results summary (docs/results/): the test metrics that show a collapse, then
# Fig. 4's two metrics at 0.5 and 1 epoch where the run recorded them.
SUMMARY_KEYS = (
    "test.dice_per_image_mean",
    "test.empty_prediction_rate",
    "test.mean_iou_both_classes",
    "test.predicted_positive_share",
    "fig4_authors_mean_iou_half_epoch",
    "fig4_authors_mean_iou_epoch_1",
    "fig4_pooled_mean_iou_half_epoch",
    "fig4_pooled_mean_iou_epoch_1",
)


def results_summary(run_dir: Path, command: str, commit: str) -> str:
    """A short Markdown summary of a finished run folder, for ``docs/results/``: the command
    line, the commit, the seeds ("one seed" when there is one), the setup, the wall time, the
    main metrics per sub-run (mean ± std and min–max over seeds) and the verdicts.

    Example:
        >>> print(results_summary(Path("runs/vc"), "python ...", "abc1234"))  # doctest: +SKIP
    """
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    setup = metrics["setup"]
    seeds = setup.get("seeds") or [setup["seed"]]
    seeded = len(seeds) > 1
    rates = ", ".join(f"{r:g}" for r in sorted(set(setup.get("learning_rates", {}).values())))
    lines = [
        f"# Section {setup['section']}: `{Path(run_dir).name}`",
        "",
        f"* Command: `{command}`",
        f"* Commit: `{commit}`",
        f"* Seeds: {', '.join(map(str, seeds))}"
        + (" (deterministic ops, one split)" if seeded else " (one seed)"),
        f"* Setup: data `{setup['data']}`, mode `{setup['mode']}`, protocol "
        f"`{setup['protocol']}`, kinds `{setup['kinds']}`, batch {setup['batch_size']}, "
        f"learning rate {rates or 'n/a'}, precision {setup['precision']}, split "
        f"{setup.get('split_sizes')}",
        f"* Wall time: {setup['seconds']:.0f} s"
        + (f" (per seed, s: {setup['seconds_per_seed']})" if "seconds_per_seed" in setup else ""),
        "",
        "| sub-run | " + " | ".join(SUMMARY_KEYS) + " |",
        "|---" * (len(SUMMARY_KEYS) + 1) + "|",
    ]
    for name, result in metrics["runs"].items():
        if seeded:
            cells = [
                "{} ({})".format(*spread_text(result[k])) if k in result else "—"
                for k in SUMMARY_KEYS
            ]
        elif result.get("status") != "ok":
            cells = [result.get("status", "failed")] * len(SUMMARY_KEYS)
        else:
            flat = flatten_numbers(result)
            cells = [fmt(flat.get(k)) for k in SUMMARY_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| finding | verdict |", "|---|---|"]
    lines += [f"| {f['what']} | {f['verdict']} |" for f in metrics["findings"]]
    return "\n".join(lines) + "\n"


def spread_text(stats: dict) -> tuple[str, str]:
    """("mean ± std", "min–max") of a `spread`, 4 significant digits."""
    return (
        f"{stats['mean']:.4g} ± {stats['std']:.2g}",
        f"{stats['min']:.4g}–{stats['max']:.4g}",
    )


def verdict(condition: bool, yes: str, no: str) -> str:
    return yes if condition else no


def fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    # python experiments/reporting.py RUN_DIR "COMMAND" COMMIT  → the summary on stdout
    print(results_summary(Path(sys.argv[1]), sys.argv[2], sys.argv[3]), end="")
