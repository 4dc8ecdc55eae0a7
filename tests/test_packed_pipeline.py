"""`storage: {synthetic: packs}` through Snakemake: one file per video for frames and flow, lists and the gate over packs."""
import pytest
import yaml

from prep.base.frame_source import count_frames
from prep.check import check_dataset
from tests.test_end_to_end import TINY, snakemake


@pytest.mark.slow
def test_packed_trees_through_the_pipeline_to_the_gate(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["synthetic"].update(num_classes=2, videos_per_class=4, frame_size=32, min_frames=6, max_frames=8)
    config["storage"] = {"synthetic": "packs"}
    config["flow"]["algorithm"] = "farneback"  # the layout is under test here, not TV-L1
    path = tmp_path / "packed.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--cores", "2", "data/synthetic/check.txt", configfile=path)
    data = tmp_path / "data" / "synthetic"
    frame_packs = sorted((data / "rawframes").glob("*/*.pack"))
    flow_packs = sorted((data / "flow").glob("*/*.pack"))
    assert len(frame_packs) == len(flow_packs) == 8
    assert not [p for p in (data / "rawframes").glob("*/*") if p.is_dir()]  # no per-frame files at all
    lines = (data / "annotations" / "synthetic_train_split_1_rawframes.txt").read_text().splitlines()
    for line in lines:
        video_id, n_frames, _ = line.rsplit(" ", 2)
        assert count_frames(data / "rawframes", video_id, storage="packs") == int(n_frames)
        assert count_frames(data / "flow", video_id, "flow", storage="packs") == int(n_frames) - 1
    frame_packs[0].unlink()  # the gate notices a missing pack and names the video
    problems, _ = check_dataset(data / "annotations", data / "rawframes", data / "flow")
    assert any(frame_packs[0].name[:-5] in p and "no directory or pack" in p for p in problems), problems
