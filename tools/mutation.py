"""Mutation testing of the critical modules: how many plausible one-line bugs do the tests catch?

Each mutant changes one operator or constant on one line of a module (``<`` → ``<=``,
``+`` → ``-``, ``and`` → ``or``, ``0`` → ``1``, a dropped ``not`` ...), in a throw-away copy of
the repository, and runs the tests mapped to that module there. A mutant is *killed* when a
test fails (or
times out); it *survives* when they all pass. The score is killed / all.

Usage:
    python tools/mutation.py                      # every module in TARGETS, 25 mutants each
    python tools/mutation.py --module mammoseg/losses.py --max-mutants 0   # all of one module
    python tools/mutation.py --list               # the mutants only, nothing run
    python tools/mutation.py --module M --json r.json   # keep the results; after new tests,
    python tools/mutation.py --rerun r.json             # run only r.json's survivors again

A re-run counts r.json's killed mutants as killed (tests were only added) and needs the module
unchanged since r.json (the mutants are found by line and column).

Mutants are drawn in a fixed order (seeded), so two runs on the same code give the same mutants.
The survivors are printed with their line, for a person to judge: a survivor is either a
missing test or an equivalent mutant (one that cannot change behaviour). Not run in CI: one
mutant costs a pytest start (TensorFlow import) plus its tests, 5-30 s on two cores.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# module -> every test file that pins it (the critical modules of issue #20); a module's tests
# live at the guessable path (mammoseg/a/b.py -> tests/a/test_b.py) and, for older tests, in the
# files listed beside it.
TARGETS: dict[str, list[str]] = {
    "mammoseg/metrics/overlap.py": ["tests/test_metrics.py", "tests/metrics/test_overlap.py"],
    "mammoseg/metrics/detection.py": ["tests/test_metrics.py", "tests/metrics/test_detection.py"],
    "mammoseg/metrics/keras_metrics.py": ["tests/test_metrics.py"],
    "mammoseg/losses.py": ["tests/test_losses.py", "tests/test_losses_over_batch.py"],
    "mammoseg/models/weights.py": ["tests/models/test_weights.py"],
    "mammoseg/models/mask_rcnn/evaluate.py": ["tests/models/mask_rcnn/test_mrcnn_evaluate.py"],
    "mammoseg/models/mask_rcnn/utils.py": [
        "tests/models/mask_rcnn/test_mrcnn_utils.py",
        "tests/models/mask_rcnn/test_mrcnn_evaluate.py",
    ],
    "mammoseg/data/mias.py": ["tests/data/test_mias.py"],
    "mammoseg/data/records.py": ["tests/data/test_records.py"],
    "mammoseg/data/cache.py": ["tests/data/test_cache.py", "tests/data/test_streaming.py"],
    "mammoseg/recipes/candidates.py": ["tests/recipes/test_candidates.py"],
}

_COMPARE_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BINOP_SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Pow: ast.Mult,
}


@dataclass(frozen=True)
class Mutant:
    """One change: the node at (line, col) of kind ``kind`` in ``path``, described for people."""

    path: str
    line: int
    col: int
    kind: str
    description: str


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                lines.update(range(value.lineno, value.end_lineno + 1))
    return lines


def find_mutants(path: str) -> list[Mutant]:
    """Every mutant of one module, in source order."""
    tree = ast.parse((REPO / path).read_text())
    skip = _docstring_lines(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if line is None or line in skip:
            continue
        col = node.col_offset
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAPS:
            new = _COMPARE_SWAPS[type(node.ops[0])].__name__
            found.append(
                Mutant(path, line, col, "compare", f"{type(node.ops[0]).__name__} -> {new}")
            )
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
            new = _BINOP_SWAPS[type(node.op)].__name__
            found.append(Mutant(path, line, col, "binop", f"{type(node.op).__name__} -> {new}"))
        elif isinstance(node, ast.BoolOp):
            new = "Or" if isinstance(node.op, ast.And) else "And"
            found.append(Mutant(path, line, col, "boolop", f"{type(node.op).__name__} -> {new}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.append(Mutant(path, line, col, "not", "drop `not`"))
        elif (
            isinstance(node, ast.Constant)
            and type(node.value) in (int, float)
            and node.value in (0, 1, 0.5, 2)
        ):
            new = {0: 1, 1: 0, 0.5: 0.25, 2: 3}[node.value]
            found.append(Mutant(path, line, col, "constant", f"{node.value!r} -> {new!r}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            found.append(Mutant(path, line, col, "bool", f"{node.value} -> {not node.value}"))
    return sorted(found, key=lambda m: (m.line, m.col, m.kind))


class _Apply(ast.NodeTransformer):
    def __init__(self, mutant: Mutant):
        self.mutant = mutant
        self.done = False

    def _here(self, node: ast.AST, kind: str) -> bool:
        m = self.mutant
        return (
            not self.done
            and m.kind == kind
            and getattr(node, "lineno", None) == m.line
            and node.col_offset == m.col
        )

    def visit_Compare(self, node):
        self.generic_visit(node)
        if self._here(node, "compare"):
            node.ops[0] = _COMPARE_SWAPS[type(node.ops[0])]()
            self.done = True
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if self._here(node, "binop"):
            node.op = _BINOP_SWAPS[type(node.op)]()
            self.done = True
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if self._here(node, "boolop"):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            self.done = True
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if self._here(node, "not"):
            self.done = True
            return node.operand
        return node

    def visit_Constant(self, node):
        if self._here(node, "constant"):
            self.done = True
            return ast.copy_location(ast.Constant({0: 1, 1: 0, 0.5: 0.25, 2: 3}[node.value]), node)
        if self._here(node, "bool"):
            self.done = True
            return ast.copy_location(ast.Constant(not node.value), node)
        return node


def mutated_source(mutant: Mutant) -> str:
    """The module's source with the mutant applied (comments and layout are not kept)."""
    tree = ast.parse((REPO / mutant.path).read_text())
    applier = _Apply(mutant)
    tree = ast.fix_missing_locations(applier.visit(tree))
    if not applier.done:
        raise RuntimeError(f"mutant not applied: {mutant}")
    return ast.unparse(tree)


def run_mutant(mutant: Mutant, tests: list[str], workdir: Path, timeout: float) -> str:
    """'killed', 'survived' or 'timeout' (counted as killed)."""
    target = workdir / mutant.path
    original = target.read_text()
    try:
        target.write_text(mutated_source(mutant))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
        env["PYTHONPATH"] = str(workdir)
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        try:
            done = subprocess.run(
                command, cwd=workdir, env=env, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return "timeout"
        return "survived" if done.returncode == 0 else "killed"
    finally:
        target.write_text(original)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="a module of TARGETS (repeatable)")
    parser.add_argument(
        "--max-mutants", type=int, default=25, help="per module, drawn seeded; 0: all"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument(
        "--rerun",
        type=Path,
        help="a --json file: run only its survivors again (its killed mutants stay killed, as "
        "tests were only added) and report the score over all of its mutants",
    )
    args = parser.parse_args(argv)
    if args.max_mutants < 0:
        parser.error(f"--max-mutants must be >= 0, received {args.max_mutants}")
    previous = json.loads(args.rerun.read_text()) if args.rerun else []
    modules = args.module or (sorted({r["path"] for r in previous}) if previous else list(TARGETS))
    unknown = [m for m in modules if m not in TARGETS]
    if unknown:
        parser.error(f"--module {unknown} not in TARGETS: {sorted(TARGETS)}")

    plan = []
    for module in modules:
        mutants = find_mutants(module)
        if args.max_mutants and len(mutants) > args.max_mutants:
            mutants = sorted(
                random.Random(f"{args.seed}:{module}").sample(mutants, args.max_mutants),
                key=lambda m: (m.line, m.col),
            )
        plan.extend((module, m) for m in mutants)
    if args.rerun:
        fields = ("path", "line", "col", "kind", "description")
        plan = [
            (r["path"], Mutant(*(r[k] for k in fields)))
            for r in previous
            if r["outcome"] == "survived" and r["path"] in modules
        ]
    if args.list:
        for _, m in plan:
            print(f"{m.path}:{m.line}:{m.col} {m.kind} {m.description}")
        return 0

    results = [r for r in previous if r["outcome"] != "survived" and r["path"] in modules]
    with tempfile.TemporaryDirectory(prefix="mammoseg-mutation-") as tmp:
        workdir = Path(tmp) / "repo"
        shutil.copytree(REPO, workdir, ignore=shutil.ignore_patterns(".git", ".venv*", "runs"))
        # A mutant only counts as killed if the tests passed without it.
        for tests in sorted({tuple(TARGETS[module]) for module in modules}):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(workdir))
            baseline = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
            )
            if baseline.returncode != 0:
                print(f"the unmutated tests fail: {' '.join(tests)}\n{baseline.stdout[-2000:]}")
                return 2
        for index, (module, mutant) in enumerate(plan, 1):
            start = time.perf_counter()
            outcome = run_mutant(mutant, TARGETS[module], workdir, args.timeout)
            seconds = time.perf_counter() - start
            results.append({**mutant.__dict__, "outcome": outcome, "seconds": round(seconds, 1)})
            print(
                f"[{index}/{len(plan)}] {outcome:8s} {mutant.path}:{mutant.line} "
                f"{mutant.description} ({seconds:.0f} s)",
                flush=True,
            )

    print("\n| module | mutants | killed | survived | score |\n|---|---|---|---|---|")
    total_killed = 0
    for module in modules:
        rows = [r for r in results if r["path"] == module]
        killed = sum(r["outcome"] != "survived" for r in rows)
        total_killed += killed
        score = f"{killed / len(rows):.0%}" if rows else "-"
        print(f"| {module} | {len(rows)} | {killed} | {len(rows) - killed} | {score} |")
    if results:
        print(
            f"| **all** | {len(results)} | {total_killed} | {len(results) - total_killed} | "
            f"**{total_killed / len(results):.0%}** |"
        )
    survivors = [r for r in results if r["outcome"] == "survived"]
    if survivors:
        print("\nSurvivors (a missing test, or an equivalent mutant):")
        for r in survivors:
            source_line = (REPO / r["path"]).read_text().splitlines()[r["line"] - 1].strip()
            print(f"  {r['path']}:{r['line']} {r['description']}: {source_line}")
    if args.json:
        partial = args.json.with_name(args.json.name + ".part")
        partial.write_text(json.dumps(results, indent=1))
        os.replace(partial, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
