"""The whole pipeline through Snakemake on the tiny configuration, in a temporary directory.

One run serves several checks: every result file and its schema, the synthetic signature (flow streams and the
temporal rgb models learn the motions; TSN rgb, blind to frame order, cannot tell a motion from its reverse), a
second run that does nothing, and a single target that plans only its own jobs.
"""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import BIN, REPO, TINY, snakemake, snakemake_executable

MODELS = ("tsn", "tsm", "i3d")
RESULT_KEYS = {"model", "dataset", "mode", "top1", "top5", "mean_class_accuracy", "efficient", "accurate",
               "num_videos", "num_classes", "per_class_accuracy", "confusion_matrix", "versions"}


@pytest.mark.slow
def test_every_result_is_written_with_its_schema(tiny_run):
    for model in MODELS:
        for mode in ("rgb", "flow", "joint"):
            record = json.loads((tiny_run / "results" / f"{model}_synthetic_{mode}.json").read_text())
            assert RESULT_KEYS <= set(record), RESULT_KEYS - set(record)
            assert record["num_classes"] == 4 and record["num_videos"] == 20
            if mode != "joint":
                assert {"checkpoint", "config", "timings"} <= set(record)
                assert record["config"]["arch"].startswith(model)
            else:
                assert record["fusion"]["weights"] == {"rgb": 1.0, "flow": 1.5}
    summary = pd.read_csv(tiny_run / "results" / "summary.csv")
    assert len(summary) == 9 and set(summary["mode"]) == {"rgb", "flow", "joint"}
    assert (tiny_run / "results" / "summary.md").read_text().count("\n") == 11
    for rule in ("synthetic_dataset", "frames", "flow", "annotations", "check", "train", "evaluate", "joint"):
        assert list((tiny_run / "logs").glob(f"{rule}*")) or list((tiny_run / "logs" / rule).glob("*")), rule
        assert list((tiny_run / "benchmarks").glob(f"{rule}*")) or list((tiny_run / "benchmarks" / rule).glob("*"))


@pytest.mark.slow
def test_synthetic_signature(tiny_run):
    """A wrong frame order, flow sign or label map breaks this: only motion direction separates the classes."""
    top1 = {(m, mode): json.loads((tiny_run / "results" / f"{m}_synthetic_{mode}.json").read_text())["top1"]
            for m in MODELS for mode in ("rgb", "flow")}
    for model in MODELS:
        assert top1[(model, "flow")] >= 0.8, (model, top1)
    assert top1[("tsm", "rgb")] >= 0.8, top1
    assert top1[("i3d", "rgb")] >= 0.8, top1
    assert top1[("tsn", "rgb")] <= 0.6, top1


@pytest.mark.slow
def test_second_run_does_nothing(tiny_run):
    result = snakemake(tiny_run, "--cores", "2", "-n", "all")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_single_target_plans_only_its_jobs(tmp_path):
    result = snakemake(tmp_path, "results/i3d_synthetic_joint.json", "-n", "--quiet", "rules")
    table = result.stdout + result.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in table.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts["train"] == 2 and counts["evaluate"] == 2 and counts["joint"] == 1, counts
    assert "summary" not in counts


def test_lint_is_clean():
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([snakemake_executable(), "--lint"], capture_output=True, text=True, cwd=REPO, env=env)
    assert "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("override, key", [
    ({"models": ["tsn", "c3d"]}, "c3d"),
    ({"recipes": {"tsn": {"arch": "tsn_r18", "epochs": -1}}}, "epochs"),
    ({"datasets": []}, "datasets"),
    ({"datasets": ["ucf202"]}, "ucf202"),
    ({"frames": {"shards": 0}}, "shards"),
])
def test_bad_config_stops_with_the_key_named(tmp_path, override, key):
    config = yaml.safe_load(TINY.read_text())
    config.update(override)
    if "models" in override:
        config["models"] = override["models"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=bad, check=False)
    assert result.returncode != 0
    assert key in result.stderr + result.stdout, result.stderr[-2000:]
