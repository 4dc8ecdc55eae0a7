"""Trees made elsewhere (issue 23): ``prep lists`` names in ``missing.csv`` the videos the split files name and the
tree lacks, and an rgb-only tree gets its rgb lists instead of every video quarantined for lack of flow."""
import csv
import shutil

import pandas as pd
import pytest

from format_trees import prepared
from tests.conftest import run_prep


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    return prepared("ucf101", tmp_path_factory.mktemp("ucf101"))


def read_missing(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def listed(path):
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else None


def test_clips_the_tree_lacks_are_in_missing_csv(ucf, tmp_path):
    frames, flow = tmp_path / "frames", tmp_path / "flow"
    shutil.copytree(ucf["rawframes"], frames)
    shutil.copytree(ucf["flow"], flow)
    ids = list(pd.read_parquet(ucf["annotations"] / "manifest.parquet")["video_id"])
    gone_rgb, gone_flow = ids[0], ids[-1]
    shutil.rmtree(frames / gone_rgb)
    shutil.rmtree(flow / gone_flow)
    result = run_prep("lists", "ucf101", "--splits", ucf["splits"], "--frames", frames, "--flow", flow,
                      "--out", tmp_path / "ann")
    assert "2 missing" in result.stdout and "missing.csv" in result.stdout, result.stdout
    rows = read_missing(tmp_path / "ann" / "missing.csv")
    assert {row["video_id"]: row["reason"] for row in rows} == {
        gone_rgb: f"no rgb frames in {frames}", gone_flow: f"no flow frames in {flow}"}
    assert all(row["class_name"] and "1:" in row["splits"] for row in rows), rows
    everything = [vid for path in sorted((tmp_path / "ann").glob("*_rawframes.txt")) for vid in listed(path)]
    assert gone_rgb not in everything and gone_flow not in everything
    assert len(everything) == len(set(everything)) >= len(ids) - 2


def test_a_whole_tree_writes_a_header_only_missing_csv(ucf):
    assert read_missing(ucf["annotations"] / "missing.csv") == []


def test_an_rgb_only_tree_gets_its_rgb_lists(ucf, tmp_path):
    frames = tmp_path / "frames"
    shutil.copytree(ucf["rawframes"], frames)  # no flow anywhere, and no --flow
    result = run_prep("lists", "ucf101", "--splits", ucf["splits"], "--frames", frames, "--out", tmp_path / "ann")
    assert "0 quarantined" in result.stdout and "0 missing" in result.stdout, result.stdout
    assert "no flow in the tree" in result.stdout
    ann = tmp_path / "ann"
    for path in sorted(ucf["annotations"].glob("*_rawframes.txt")):
        assert (ann / path.name).read_text() == path.read_text()  # as the pipeline's, flow or not
        assert not (ann / path.name.replace("_rawframes", "_flow")).exists()
    assert (ann / "ucf101_01.json").exists()  # 3D-ResNets reads rgb from it
    assert read_missing(ann / "missing.csv") == []
