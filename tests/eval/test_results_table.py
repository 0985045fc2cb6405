"""`python -m llava.eval.results_table`: every metric, group means, a non-zero exit for a task without a metric."""

from __future__ import annotations

import json

from llava.eval import results_table


def _write(tmp_path, results: dict):
    path = tmp_path / "r_results.json"
    path.write_text(json.dumps(results))
    return path


def test_every_metric_is_shown_non_numeric_ones_as_such(tmp_path, capsys):
    path = _write(tmp_path, {"results": {
        "a": {"alias": "a", "acc,none": 0.5, "acc_stderr,none": 0.1},
        "ocr": {"alias": "ocr", "ocrbench_accuracy,none": {"Text Recognition": 3}, "submission,none": "out/sub.json"},
    }})  # fmt: skip
    assert results_table.main([str(path), "--tasks", "a,ocr"]) == 0
    out = capsys.readouterr().out
    assert "0.500" in out and "acc_stderr" not in out
    assert '{"Text Recognition": 3} (non-numeric)' in out and "out/sub.json (non-numeric)" in out


def test_group_mean_over_its_subtasks(tmp_path, capsys):
    path = _write(tmp_path, {
        "results": {"mvbench": {"alias": "mvbench"},
                    "mvbench_a": {"alias": " - a", "mvbench_accuracy,none": 50.0},
                    "mvbench_b": {"alias": " - b", "mvbench_accuracy,none": 100.0}},
        "groups": {"mvbench": {"alias": "mvbench"}},
        "group_subtasks": {"mvbench": ["mvbench_b", "mvbench_a"]},
    })  # fmt: skip
    assert results_table.main([str(path), "--tasks", "mvbench"]) == 0
    lines = capsys.readouterr().out.splitlines()
    [mean] = [line for line in lines if line.startswith("mvbench ")]
    assert "mvbench_accuracy mean of 2" in mean and mean.endswith("75.000")
    rows = results_table.results_rows(json.loads(path.read_text()))
    assert [task for task, _, _ in rows] == ["mvbench_a", "mvbench_b", "mvbench"]


def test_a_requested_task_without_metric_fails(tmp_path, capsys):
    path = _write(tmp_path, {"results": {"a": {"alias": "a", "acc,none": 0.5}, "b": {"alias": "b"}},
                             "group_subtasks": {"g": ["a", "c"]}})  # fmt: skip
    assert results_table.main([str(path), "--tasks", "a"]) == 0
    assert results_table.main([str(path), "--tasks", "a,b"]) == 1
    assert "no metric for task(s) b" in capsys.readouterr().err
    assert results_table.main([str(path), "--tasks", "g"]) == 1  # subtask c has no results
    assert "subtasks without a metric: c" in capsys.readouterr().err
    assert results_table.main([str(path), "--tasks", "missing"]) == 1
    assert results_table.main([str(tmp_path / "missing.json")]) == 1
    assert results_table.main([str(_write(tmp_path, {"results": {}}))]) == 1
