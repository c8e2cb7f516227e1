"""Ours on one or both process backends against paglets 2.0.0: what the local and move benches share.

``--backend both`` runs our side of a scenario twice, once per backend (``PAGLETS_BACKEND`` in the
scenario's environment, inherited by every host process it starts), beside the reference in the same
invocation; ``--runs N`` repeats the whole set N times, alternating the sides so that a change of the
machine's load touches all of them, and reports the median of the runs' results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _reference import compile_bytecode, run_scenario

BACKENDS = ("linux", "portable")

#: What the portable backend must keep against 2.0 (create, send and dispatch).
PORTABLE_RATIO_TARGETS = {"create": 5.0, "send": 3.0, "dispatch": 3.0}


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    unit: str
    lower_is_better: bool = True
    target: float | None = None  # our absolute target (the default backend)
    kind: str = ""  # "create", "send" or "dispatch": the portable backend's ratio target applies

    def speedup(self, ours: float, theirs: float) -> float:
        return theirs / ours if self.lower_is_better else ours / theirs

    def meets(self, ours: float) -> bool:
        assert self.target is not None
        return ours <= self.target if self.lower_is_better else ours >= self.target


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "both"),
        default=None,
        help="process backend of our hosts (PAGLETS_BACKEND; default: the platform's); "
        "'both': linux and portable side by side",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat ours and 2.0 this many times, alternating; medians"
    )


def backends_of(choice: str | None) -> list[str | None]:
    if choice == "both":
        return list(BACKENDS)
    return [choice]


def label_of(backend: str | None) -> str:
    return backend or "ours"


def run_sides(
    scenario: Path,
    ours_args: list[str],
    ref_args: list[str] | None,
    *,
    backends: Sequence[str | None],
    runs: int,
    isolate: bool,
    reference: Callable[[], Path] | None,
    timeout: float,
    ref_timeout: float,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Run ``scenario`` ``runs`` times on every backend and (with ``reference``) on 2.0.

    Returns the median result per backend label, the median reference result (empty without it), and
    every run's raw results."""
    compile_bytecode(sys.executable)
    raw: dict[str, list[dict[str, Any]]] = {label_of(b): [] for b in backends}
    raw_ref: list[dict[str, Any]] = []
    for _ in range(max(1, runs)):
        for backend in backends:
            env = {"PAGLETS_BACKEND": backend} if backend else None
            raw[label_of(backend)].append(
                run_scenario(
                    scenario, ours_args, python=sys.executable, isolate=isolate, timeout=timeout, env=env
                )
            )
        if reference is not None:
            raw_ref.append(run_scenario(scenario, ref_args, python=reference(), timeout=ref_timeout))
    ours = {label: median_result(results) for label, results in raw.items()}
    ref = median_result(raw_ref) if raw_ref else {}
    return ours, ref, {"ours": raw, "reference": raw_ref}


def median_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Key by key: the median of the numbers, the first value of anything else."""
    merged: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results if key in r]
        numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        merged[key] = statistics.median(numbers) if len(numbers) == len(values) else values[0]
    return merged


def print_table(measures: Sequence[Measure], ours: dict[str, dict[str, Any]], ref: dict[str, Any]) -> None:
    """One row per measure: ours per backend, 2.0, the speedups, our target and whether it is met; with the
    portable backend, also its ratio target against 2.0 (``PORTABLE_RATIO_TARGETS``)."""
    labels = list(ours)
    portable = "portable" in labels and bool(ref)
    head = f"{'measure':40} {'unit':>5}" + "".join(f" {label:>9}" for label in labels) + f" {'2.0.0':>9}"
    head += "".join(f" {label[:7] + ' x':>10}" for label in labels) if ref else ""
    head += f" {'target':>8}  met"
    if portable:
        head += "   portable >= x vs 2.0"
    print(head)
    for m in measures:
        mine = {label: float(ours[label][m.key]) for label in labels}
        theirs = float(ref[m.key]) if m.key in ref else None
        row = f"{m.label:40} {m.unit:>5}" + "".join(f" {_num(v):>9}" for v in mine.values())
        row += f" {'' if theirs is None else _num(theirs):>9}"
        if ref:
            row += "".join(
                f" {'' if not theirs else f'{m.speedup(v, theirs):.1f}x':>10}" for v in mine.values()
            )
        first = mine[labels[0]]
        row += f" {'' if m.target is None else _num(m.target):>8}  "
        row += "" if m.target is None else ("yes" if m.meets(first) else "NO ")
        if portable and m.kind and theirs:
            goal = PORTABLE_RATIO_TARGETS[m.kind]
            got = m.speedup(mine["portable"], theirs)
            row += f"   {goal:.0f}x: {'yes' if got >= goal else 'NO'}"
        print(row)
    if len(labels) > 1 or ref:
        print(f"('met' is {labels[0]}'s; speedup = 2.0's time / ours, or our rate / 2.0's)")


def _num(value: float) -> str:
    return f"{value:,.1f}" if abs(value) < 100_000 else f"{value:,.0f}"
