"""The report: train.report's verbs on small inputs, and `snakemake --report` after the tiny end-to-end run.

The slow test reuses the session's one tiny run (the ``tiny_run`` fixture in tests/conftest.py), which builds the
report artefacts as part of `rule all`.
"""
import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from tests import installed_only
from tests.conftest import snakemake
from train import report


def test_dequantize_inverts_the_flow_quantization():
    assert np.allclose(report.dequantize(np.array([0, 255], np.uint8), 20), [-20, 20])
    assert abs(report.dequantize(np.array([128], np.uint8), 20)[0]) < 0.1


def test_flow_colours_follow_direction():
    ones, zeros = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    right = report.flow_to_rgb(5 * ones, zeros, bound=5)[0, 0]
    left = report.flow_to_rgb(-5 * ones, zeros, bound=5)[0, 0]
    still = report.flow_to_rgb(zeros, zeros, bound=5)[0, 0]
    assert right.argmax() == 0 and right[0] == 255  # red
    assert left[0] == 0 and left[1] == left[2] == 255  # cyan
    assert still.max() == 0  # no motion: black


def test_table_curves_classes_and_dataset(tmp_path):
    classes = ["a", "b"]
    for mode in ("rgb", "flow"):
        record = {"model": "tsn", "dataset": "synthetic", "mode": mode, "top1": 0.5, "num_videos": 4,
                  "num_classes": 2, "classes": classes, "per_class_accuracy": [1.0, 0.0],
                  "confusion_matrix": [[2, 0], [2, 0]],
                  "accurate": {"top1": 0.5, "top5": 1.0, "mean_class_accuracy": 0.5},
                  "efficient": {"top1": 0.25, "top5": 1.0, "mean_class_accuracy": 0.25}}
        (tmp_path / f"tsn_synthetic_{mode}.json").write_text(json.dumps(record))
    paths = sorted(tmp_path.glob("*.json"))
    assert report.main(["table", *map(str, paths), "--csv", str(tmp_path / "t.csv"),
                        "--html", str(tmp_path / "t.html")]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table["mode"]) == ["rgb", "flow"] and list(table["efficient_top1"]) == [0.25, 0.25]
    assert "<table" in (tmp_path / "t.html").read_text()
    assert report.main(["classes", str(paths[0]), "--out", str(tmp_path / "c.png")]) == 0
    log = tmp_path / "run" / "log.jsonl"
    log.parent.mkdir()
    log.write_text("".join(json.dumps({"epoch": e, "lr": 0.01, "train_loss": 1 / e, "train_top1": 0.2 * e,
                                       "val_top1": 0.1 * e}) + "\n" for e in (1, 2, 3)))
    assert report.main(["curves", str(log), "--out", str(tmp_path / "curves.png")]) == 0
    manifest = pd.DataFrame({"video_id": ["a/1", "a/2", "b/1"], "class_name": ["a", "a", "b"], "label": [0, 0, 1],
                             "n_frames": [10, 12, None], "n_flow": [9, 11, None],
                             "status": ["ok", "ok", "quarantined: frames: no decodable video frames"],
                             "note": ["", "", ""], "split_1": ["train", "test", "train"]})
    manifest.to_parquet(tmp_path / "manifest.parquet", index=False)
    assert report.main(["dataset", str(tmp_path / "manifest.parquet"), "--plot", str(tmp_path / "d.png"),
                        "--html", str(tmp_path / "d.html"), "--csv", str(tmp_path / "d.csv")]) == 0
    page = (tmp_path / "d.html").read_text()
    assert "no decodable video frames" in page and "b/1" in page
    assert len(pd.read_csv(tmp_path / "d.csv")) == 1
    for png in ("c.png", "curves.png", "d.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_flow_samples_read_frames_and_flow(tmp_path, synthetic_small):
    root = synthetic_small["root"]
    index = synthetic_small["index"]
    flow = {r["video_id"]: r["n_flow"] for r in synthetic_small["flow"]}
    manifest = index.assign(n_flow=[flow.get(v, 0) for v in index["video_id"]])
    samples = report.plot_flow_samples(manifest, root / "rawframes", root / "flow", tmp_path / "flow.png",
                                       max_classes=2, title="synthetic")
    assert len(samples) == 2 and (tmp_path / "flow.png").stat().st_size > 1000


@pytest.mark.slow
def test_snakemake_report_holds_the_table_and_the_plots(tiny_run, tmp_path):
    out = tmp_path / "report.zip"
    snakemake(tiny_run, "--report", str(out))
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        page = archive.read(next(n for n in names if n.endswith("report/report.html"))).decode()
        table = next(n for n in names if n.endswith("/results.csv"))
        rows = pd.read_csv(archive.open(table))
    assert len(rows) == 9 and set(rows["mode"]) == {"rgb", "flow", "joint"}
    assert {"accurate_top1", "efficient_top1"} <= set(rows.columns)
    assert any(n.endswith("/results.html") for n in names)
    pngs = {n.rsplit("/", 1)[1] for n in names if n.endswith(".png")}
    for model in ("tsn", "tsm", "i3d"):
        for mode in ("rgb", "flow", "joint"):
            assert f"{model}_synthetic_{mode}.png" in pngs, (model, mode, pngs)
    assert {"synthetic.png", "synthetic_stats.png"} <= pngs
    assert any(n.endswith("synthetic_stats.html") for n in names)
    curves = [n for n in names if n.endswith(".png") and "rgb" in n]
    assert len(curves) >= 6  # 3 curves (rgb runs) + 3 class plots
    for category in ("Results", "Training curves", "Per-class accuracy", "Datasets"):
        assert category in page, category


@pytest.mark.slow
def test_snakemake_report_works_with_what_pip_install_installs(tiny_run, tmp_path):
    """The README's `snakemake --report report.html` after a plain `pip install -e .`: pytest's own dependencies
    (pygments among them) are made unimportable, so a runtime dependency missing from pyproject.toml fails here."""
    env = installed_only.environment(tmp_path / "site", base={**os.environ, "PYTHONPATH": ""})
    out = tmp_path / "report.html"
    result = snakemake(tiny_run, "--report", str(out), env=env, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Results" in out.read_text()
