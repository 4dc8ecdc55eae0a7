"""Trees describe themselves (prep.base.trees): the stage that makes a tree records how, readers take it from there,
and a flag or a rerun that contradicts the record is an error naming both."""
import json

import pytest
import torch

from prep import UserError
from prep.base.names import is_bookkeeping
from prep.base.trees import (TREE_RECORD, flow_record, read_tree, record_tree, rgb_record, tree_conventions,
                             tree_namings)
from tests.conftest import run_prep


def test_a_record_is_written_once_and_guards_its_tree(tmp_path):
    rgb = rgb_record("frames", "frames", "3dresnets", short_side=128, quality=90)
    record_tree(tmp_path, "rgb", rgb)
    record_tree(tmp_path, "rgb", dict(rgb, stage="frames"))  # every shard writes the same: fine
    with pytest.raises(UserError, match=r'naming "3dresnets".*this run has naming "mmaction"'):
        record_tree(tmp_path, "rgb", dict(rgb, naming="mmaction"))
    record_tree(tmp_path, "flow", flow_record("frames", "3dresnets", "tvl1", 20, 95, 128))  # flow beside the frames
    record = read_tree(tmp_path)
    assert record["rgb"]["frame_size"] == {"short_side": 128, "size": None} and record["flow"]["bound"] == 20.0
    assert record["flow"]["backend"] == "opencv" and record["tool"].startswith("actionflow")
    assert is_bookkeeping(TREE_RECORD)  # no archive member or video can take the name
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_readers_take_the_record_and_refuse_a_contradicting_flag(tmp_path):
    record_tree(tmp_path, "flow", flow_record("packs", "mmaction_k400_flow", "dis", 10, 95, backend="torch"))
    found = tree_conventions(tmp_path, "flow", naming="mmaction_k400_flow")  # a flag that agrees is fine
    assert (found["naming"], found["algorithm"], found["backend"], found["bound"]) == \
        ("mmaction_k400_flow", "dis", "torch", 10.0)
    with pytest.raises(UserError, match=r"--bound 20\.0 contradicts .*\.tree\.meta: .* bound 10\.0"):
        tree_conventions(tmp_path, "flow", bound=20.0)
    other = tmp_path / "made_elsewhere"  # no record: the flags, else the defaults
    assert tree_conventions(other, "flow")["bound"] == 20.0
    assert tree_conventions(other, "rgb", naming="3dresnets")["naming"] == "3dresnets"
    assert tree_namings(other, other, "3dresnets") == ("3dresnets", "3dresnets")  # flow: as the rgb
    (other / TREE_RECORD).parent.mkdir()
    (other / TREE_RECORD).write_text("{not json")
    with pytest.raises(UserError, match="not a tree record"):
        tree_conventions(other, "rgb")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from prep.datasets.synthetic import generate

    root = tmp_path_factory.mktemp("trees")
    generate(root / "raw", seed=5, num_classes=2, videos_per_class=2, frame_size=32, min_frames=4, max_frames=5,
             test_fraction=0.5)
    run_prep("index", "synthetic", root / "raw" / "splits", root / "raw" / "videos", root / "index.parquet")
    return root


def test_the_stages_record_and_the_readers_follow(tiny, tmp_path):
    """frames in 3D-ResNets names; flow, lists and the gate are given no naming: the records say it."""
    frames, flow, lists = tmp_path / "rawframes", tmp_path / "flow", tmp_path / "annotations"
    run_prep("frames", tiny / "raw" / "videos", frames, "--index", tiny / "index.parquet", "--naming", "3dresnets",
             "--pack", "--report", tmp_path / "frames.csv")
    assert read_tree(frames)["rgb"] == {"stage": "frames", "storage": "packs", "naming": "3dresnets",
                                        "frame_size": {"short_side": None, "size": None}, "quality": 95}
    again = run_prep("frames", tiny / "raw" / "videos", frames, "--index", tiny / "index.parquet", check=False)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr  # would mix img_ and image_
    assert '"3dresnets"' in again.stderr and '"mmaction"' in again.stderr and "Traceback" not in again.stderr
    run_prep("flow", frames, flow, "--index", tiny / "index.parquet", "--algorithm", "farneback",
             "--report", tmp_path / "flow.csv")  # reads image_*.jpg: the frames' record says so
    assert read_tree(flow)["flow"]["naming"] == "3dresnets" and read_tree(flow)["flow"]["storage"] == "frames"
    run_prep("annotations", "synthetic", tiny / "index.parquet", lists, "--frames-reports", tmp_path / "frames.csv",
             "--flow-reports", tmp_path / "flow.csv", "--frames", frames, "--flow", flow)
    run_prep("check", lists, "--frames", frames, "--flow", flow)
    clash = run_prep("lists", "synthetic", "--splits", tiny / "raw" / "splits", "--frames", frames, "--flow", flow,
                     "--out", tmp_path / "lists", "--naming", "mmaction", check=False)
    assert clash.returncode == 2 and "--naming mmaction contradicts" in clash.stderr, clash.stderr
    # the gate: a manifest that says other names than the trees
    record = json.loads((flow / TREE_RECORD).read_text())
    record["flow"]["naming"] = "mmaction"
    (flow / TREE_RECORD).write_text(json.dumps(record))
    gate = run_prep("check", lists, "--frames", frames, "--flow", flow, check=False)
    assert gate.returncode == 2 and "manifest.parquet says" in gate.stderr and "3dresnets" in gate.stderr


def test_changed_tvl1_parameters_are_recorded_and_guard_the_tree(tiny, tmp_path):
    """``--tvl1`` reaches the record (only what differs from OpenCV's defaults); a rerun with other parameters is an
    error naming both; a model trained on default flow refuses this tree (the parameters are the flow's content)."""
    from prep.base.trees import agree, conventions
    frames, flow = tmp_path / "rawframes", tmp_path / "flow"
    run_prep("frames", tiny / "raw" / "videos", frames, "--index", tiny / "index.parquet")
    run_prep("flow", frames, flow, "--index", tiny / "index.parquet", "--tvl1", "epsilon=0.05,warps=5")
    assert read_tree(flow)["flow"]["parameters"] == {"epsilon": 0.05}
    again = run_prep("flow", frames, flow, "--index", tiny / "index.parquet", check=False)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert 'parameters {"epsilon": 0.05}' in again.stderr and "parameters null" in again.stderr
    wrong = run_prep("flow", frames, tmp_path / "other", "--tvl1", "eps=1", check=False)
    assert wrong.returncode == 2 and "unknown TV-L1 parameter 'eps'" in wrong.stderr
    assert not (tmp_path / "other").exists()
    found = tree_conventions(flow, "flow")
    with pytest.raises(UserError, match=r'parameters \{\}.*parameters \{"epsilon": 0\.05\}'):
        agree("flow", conventions(None, "flow", "defaults"), found, "the checkpoint", "the tree")
    agree("flow", found, tree_conventions(flow, "flow"), "the checkpoint", "the tree")


def test_predict_reads_a_videos_tree_and_the_runs_flow(tiny, tmp_path, capsys):
    """predict on prepared flow: the tree's record names the files and must match the bound the run trained on."""
    from train import predict
    from train.recipe import make_model, resolve

    flow = tmp_path / "flow"
    run_prep("flow", tiny / "raw" / "videos", flow, "--index", tiny / "index.parquet", "--algorithm", "farneback",
             "--bound", "10", "--flow-naming", "mmaction_k400_flow")
    settings = resolve({"arch": "tsn_r18", "model_options": {"base_channels": 4}, "num_clips": 2, "input_size": 32,
                        "resize_short": 32}, "flow")
    checkpoint = tmp_path / "final.pt"
    tree = tree_conventions(flow, "flow")
    torch.save({"model": make_model(settings, 2).state_dict(), "settings": settings, "classes": ["a", "b"],
                "run_info": {"tree": tree}}, checkpoint)
    video = next(p for p in flow.rglob("*") if p.is_dir() and (p / "x_00001.jpg").is_file())
    assert predict.main([str(video), "--checkpoint", str(checkpoint), "--top", "1"]) == 0
    assert predict.main([str(video), "--checkpoint", str(checkpoint), "--bound", "20"]) == 2
    assert "--bound 20.0 contradicts" in capsys.readouterr().err
    torch.save({"model": make_model(settings, 2).state_dict(), "settings": settings, "classes": ["a", "b"],
                "run_info": {"tree": dict(tree, bound=20.0)}}, checkpoint)
    assert predict.main([str(video), "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "bound 20.0" in err and "bound 10.0" in err  # the run's tree and the video's tree, both named
    clip = next((tiny / "raw" / "videos").rglob("*.avi"))  # from a video file: flow as the run's tree was made
    assert predict.main([str(clip), "--checkpoint", str(checkpoint), "--top", "2"]) == 0
