"""Prints the table of an lmms-eval results file and fails when a task is missing from it.

    python -m llava.eval.results_table OUTPUT/.../<datetime>_results.json [--tasks a,b]

lmms-eval logs a crash and still exits 0 (spec lmms_eval_plugin.md section 7), so the launcher checks the results
file instead of the exit code: a missing file or task is an error here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def results_rows(results: dict, *, tasks: list[str] | None = None) -> list[tuple[str, str, float]]:
    """(task, metric, value) rows of `results["results"]`; `KeyError` naming the tasks that have no results."""
    by_task = results.get("results", {})
    # A group (mvbench, video_mmmu) may be reported under "groups" only.
    missing = [task for task in tasks or [] if task not in by_task and task not in results.get("groups", {})]
    if missing:
        raise KeyError(f"no results for task(s) {', '.join(missing)} (lmms-eval failed on them: see its log)")
    rows = []
    for task, metrics in sorted(by_task.items()):
        for name, value in sorted(metrics.items()):
            # "<metric>,<filter>" keys carry scores; stderr entries and aliases are left out of the table.
            if "," in name and "_stderr" not in name and isinstance(value, (int, float)):
                rows.append((task, name.split(",")[0], float(value)))
    return rows


def format_table(rows: list[tuple[str, str, float]]) -> str:
    width = max([len(task) for task, _, _ in rows] + [4])
    lines = [f"{'task':<{width}}  {'metric':<12}{'value':>8}"]
    lines += [f"{task:<{width}}  {metric:<12}{value:>8.3f}" for task, metric, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="an lmms-eval *_results.json")
    parser.add_argument("--tasks", default="", help="comma-separated tasks that must have results")
    args = parser.parse_args(argv)
    tasks = [task for task in args.tasks.split(",") if task]
    try:
        rows = results_rows(json.loads(args.results.read_text()), tasks=tasks)
    except (OSError, KeyError, json.JSONDecodeError) as error:
        sys.stderr.write(f"{args.results}: {error}\n")
        return 1
    sys.stdout.write(format_table(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
