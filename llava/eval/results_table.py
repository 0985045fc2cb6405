"""Prints the table of an lmms-eval results file and fails when a requested task has no metric in it.

    python -m llava.eval.results_table OUTPUT/.../<datetime>_results.json [--tasks a,b]

Every metric is shown: numbers with three decimals, anything else (a dict, a string such as a submission file) as
its text marked `(non-numeric)`. A group lmms-eval defines (`mvbench`: 20 subtasks, `video_mmmu`: 3) gets a row
`<group>  <metric>  mean of N` per metric all its subtasks share: the unweighted mean of the subtask scores (the
benchmarks' convention), unless lmms-eval already reported an aggregate for the group. lmms-eval logs a crash and
still exits 0 (spec lmms_eval_plugin.md section 7), so the launcher relies on this check: a missing file, a
requested task (or group) without any metric, is an error (exit 1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

Row = tuple[str, str, Any]  # (task or group, metric, value: float or the non-numeric value as it is)


def _metrics(entry: dict) -> dict[str, Any]:
    """`{metric: value}` of one task's entry: "<metric>,<filter>" keys, stderr entries and the alias left out."""
    found = {}
    for name, value in entry.items():
        if "," not in name or "_stderr" in name:
            continue
        metric, _, filter_name = name.partition(",")
        found[metric if filter_name in ("none", "") else f"{metric} ({filter_name})"] = value
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _group_members(results: dict) -> dict[str, list[str]]:
    """Group -> leaf tasks (nested groups followed), from lmms-eval's `group_subtasks`."""
    direct = {group: list(members) for group, members in (results.get("group_subtasks") or {}).items() if members}

    def leaves(name: str, seen: frozenset[str]) -> list[str]:
        if name not in direct or name in seen:
            return [name]
        return [leaf for member in direct[name] for leaf in leaves(member, seen | {name})]

    return {group: leaves(group, frozenset()) for group in direct}


def results_rows(results: dict, *, tasks: list[str] | None = None) -> list[Row]:
    """(task, metric, value) rows of every task and group; `LookupError` naming the requested tasks (or groups) that
    have no metric (lmms-eval failed on them, or left them out)."""
    by_task = {task: _metrics(entry) for task, entry in (results.get("results") or {}).items()}
    groups = _group_members(results)
    reported_groups = {group: _metrics(entry) for group, entry in (results.get("groups") or {}).items()}
    rows: list[Row] = []
    for task in sorted(by_task):
        if task in groups:
            continue  # a group's own entry: handled below
        rows += [(task, metric, value) for metric, value in sorted(by_task[task].items())]
    group_metrics: dict[str, dict[str, Any]] = {}
    for group, members in sorted(groups.items()):
        metrics = dict(reported_groups.get(group) or by_task.get(group) or {})
        scored = [by_task[m] for m in members if by_task.get(m)]
        if len(scored) == len(members):
            shared = set.intersection(*(set(entry) for entry in scored)) if scored else set()
            for metric in sorted(shared - set(metrics)):
                values = [entry[metric] for entry in scored]
                if all(_is_number(value) for value in values):
                    metrics[f"{metric} mean of {len(values)}"] = sum(values) / len(values)
        group_metrics[group] = metrics
        rows += [(group, metric, value) for metric, value in sorted(metrics.items())]
    missing = []
    for task in tasks or []:
        if task in groups:
            members = groups[task]
            if not group_metrics.get(task) and not all(by_task.get(m) for m in members):
                missing.append(f"{task} (subtasks without a metric: "
                               f"{', '.join(m for m in members if not by_task.get(m))})")  # fmt: skip
        elif not by_task.get(task):
            missing.append(task)
    if missing:
        raise LookupError(f"no metric for task(s) {'; '.join(missing)} (lmms-eval failed on them: see its log)")
    return rows


def _format_value(value: Any) -> str:
    if _is_number(value):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return (text if len(text) <= 60 else text[:57] + "...") + " (non-numeric)"


def format_table(rows: list[Row]) -> str:
    task_width = max([len(task) for task, _, _ in rows] + [4])
    metric_width = max([len(metric) for _, metric, _ in rows] + [6])
    lines = [f"{'task':<{task_width}}  {'metric':<{metric_width}}  value"]
    lines += [
        f"{task:<{task_width}}  {metric:<{metric_width}}  {_format_value(value)}" for task, metric, value in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="an lmms-eval *_results.json")
    parser.add_argument("--tasks", default="", help="comma-separated tasks (or groups) that must have a metric")
    args = parser.parse_args(argv)
    tasks = [task for task in args.tasks.split(",") if task]
    try:
        rows = results_rows(json.loads(args.results.read_text()), tasks=tasks)
    except (OSError, LookupError, json.JSONDecodeError) as error:
        sys.stderr.write(f"{args.results}: {error}\n")
        return 1
    if not rows:
        sys.stderr.write(f"{args.results}: no metric at all\n")
        return 1
    sys.stdout.write(format_table(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
