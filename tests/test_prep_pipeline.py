"""The preparation stages on real files: synthetic videos → frames → flow → annotations → check."""
import json

import cv2
import numpy as np
import pandas as pd

from prep.annotations import build_manifest, read_reports, write_annotations
from prep.datasets import ucf101
from prep.datasets.synthetic import class_names, generate
from prep.base.optical_flow import quantize
from tests.conftest import decoded_frames, run_prep


def test_synthetic_dataset_is_deterministic_and_ucf_shaped(tmp_path):
    generate(tmp_path / "a", seed=7, num_classes=2, videos_per_class=2, frame_size=32, min_frames=4, max_frames=5)
    generate(tmp_path / "b", seed=7, num_classes=2, videos_per_class=2, frame_size=32, min_frames=4, max_frames=5)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert {p.suffix for p in files_a if p.parts[0] == "videos"} == {".avi", ".mp4"}
    raw = (tmp_path / "a" / "splits" / "classInd.txt").read_bytes()
    assert raw == b"1 MoveRight\r\n2 MoveLeft\r\n"  # CRLF, as the official UCF101 files
    index = ucf101.read_index(tmp_path / "a" / "splits")
    assert index.classes == ["MoveRight", "MoveLeft"]
    assert sorted(v.splits["1"] for v in index.videos) == ["test", "test", "train", "train"]
    avi_header = next((tmp_path / "a").rglob("*.avi")).read_bytes()[:4096]
    assert b"XVID" in avi_header  # the stream's fourcc, as UCF101's xvid files


def test_reversed_class_is_the_forward_motion_played_backwards():
    from prep.datasets.synthetic import render_clip

    forward = render_clip("MoveRight", False, np.random.default_rng(1), 6, 48)
    backward = render_clip("MoveRight", True, np.random.default_rng(1), 6, 48)
    assert np.array_equal(forward[::-1], backward)


def test_bad_synthetic_settings_name_the_key(tmp_path):
    result = run_prep("synth", tmp_path / "x", "--num-classes", "3", check=False)
    assert result.returncode == 2 and "synthetic.num_classes" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_frames_are_exactly_the_decoded_frames(synthetic_small):
    root = synthetic_small["root"]
    for row in synthetic_small["index"].itertuples():
        reference = decoded_frames(root / "raw" / "videos" / row.video_path)
        folder = root / "rawframes" / row.video_id
        names = sorted(p.name for p in folder.glob("img_*.jpg"))
        assert names == [f"img_{i:05d}.jpg" for i in range(1, len(reference) + 1)]
        assert (folder / "n_frames").read_text().strip() == str(len(reference))
        # the JPEG of frame k is frame k: closest to decoded frame k, not its neighbours
        for k in (0, len(reference) - 1):
            image = cv2.imread(str(folder / names[k])).astype(int)
            errors = [np.abs(image - other.astype(int)).mean() for other in reference]
            assert int(np.argmin(errors)) == k


def test_flow_equals_direct_opencv_tvl1(synthetic_small):
    root = synthetic_small["root"]
    video_id = synthetic_small["index"]["video_id"][0]
    frames = sorted((root / "rawframes" / video_id).glob("img_*.jpg"))
    flow_dir = root / "flow" / video_id
    assert len(list(flow_dir.glob("flow_x_*.jpg"))) == len(frames) - 1
    assert len(list(flow_dir.glob("flow_y_*.jpg"))) == len(frames) - 1
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    gray = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY) for p in frames[:3]]
    for k in (1, 2):
        flow = tvl1.calc(gray[k - 1], gray[k], None)
        for axis, name in ((0, "x"), (1, "y")):
            ok, expected = cv2.imencode(".jpg", quantize(flow[..., axis], 20), [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert (flow_dir / f"flow_{name}_{k:05d}.jpg").read_bytes() == expected.tobytes()


def test_quantization_bound_and_rounding():
    values = np.array([-25, -20, -0.05, 0, 0.0785, 19.99, 20, 30], dtype=np.float32)
    assert quantize(values, 20).tolist() == [0, 0, 127, 128, 128, 255, 255, 255]
    # 255·(v+20)/40 = 128.0 exactly at v = 0.0784…: half rounds up
    assert quantize(np.array([40 * 127.5 / 255 - 20], dtype=np.float64), 20).tolist() == [128]


def test_flow_sign_follows_the_motion(synthetic_small):
    """MoveRight: mean flow_x above 128 on the object; MoveLeft below (sign convention of TV-L1)."""
    root = synthetic_small["root"]
    means = {}
    for row in synthetic_small["index"].itertuples():
        if row.class_name in ("MoveRight", "MoveLeft"):
            xs = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(float)
                  for p in sorted((root / "flow" / row.video_id).glob("flow_x_*.jpg"))]
            values = np.concatenate([x[np.abs(x - 128) > 3] for x in xs])
            means.setdefault(row.class_name, []).append(values.mean())
    assert min(means["MoveRight"]) > 128 > max(means["MoveLeft"])


def test_rerun_skips_finished_videos_and_redoes_partial_ones(synthetic_small, tmp_path):
    root = synthetic_small["root"]
    video_id = synthetic_small["index"]["video_id"][0]
    out = tmp_path / "frames"
    video = root / "raw" / "videos" / synthetic_small["index"]["video_path"][0]
    # a killed run leaves a hidden temporary directory, never a directory under the final name
    (out / video_id.split("/")[0] / f".{video_id.split('/')[1]}.abc.tmp").mkdir(parents=True)
    run_prep("frames", video.parent.parent, out, "--report", tmp_path / "r1.csv")
    first = pd.read_csv(tmp_path / "r1.csv")
    assert set(first["status"]) == {"done"}
    assert not list((out / video_id.split("/")[0]).glob(".*.tmp"))
    run_prep("frames", video.parent.parent, out, "--report", tmp_path / "r2.csv")
    second = pd.read_csv(tmp_path / "r2.csv")
    assert set(second["status"]) == {"skipped"}
    assert second["n_frames"].tolist() == first["n_frames"].tolist()
    assert second["fps"].tolist() == first["fps"].tolist()


def test_bad_videos_are_quarantined_and_the_shard_carries_on(synthetic_small, tmp_path):
    videos = tmp_path / "videos" / "Cls"
    videos.mkdir(parents=True)
    good = next((synthetic_small["root"] / "raw" / "videos").rglob("*.avi"))
    (videos / "good.avi").write_bytes(good.read_bytes())
    (videos / "empty.avi").write_bytes(b"")
    (videos / "garbage.mp4").write_bytes(b"\x00not a video" * 100)
    (videos / "truncated.avi").write_bytes(good.read_bytes()[:200])
    run_prep("frames", tmp_path / "videos", tmp_path / "frames", "--report", tmp_path / "r.csv")
    report = pd.read_csv(tmp_path / "r.csv", keep_default_na=False).set_index("video_id")
    assert report.loc["Cls/good", "status"] == "done"
    assert report.loc["Cls/empty", "status"] == "quarantined: empty file"
    assert report.loc["Cls/garbage", "status"].startswith("quarantined")
    assert report.loc["Cls/truncated", "status"].startswith("quarantined")
    assert sorted(p.name for p in (tmp_path / "frames" / "Cls").iterdir()) == ["good"]


def test_annotations_every_format_one_label_map(synthetic_small, tmp_path):
    root = synthetic_small["root"]
    manifest = build_manifest(synthetic_small["index"], read_reports([root / "frames.csv"]),
                              read_reports([root / "flow.csv"]))
    write_annotations(manifest, synthetic_small["classes"], "synthetic", tmp_path / "ann")
    ann = tmp_path / "ann"
    classes = (ann / "label_map.txt").read_text().splitlines()
    assert classes == class_names(4)
    rgb = (ann / "synthetic_train_split_1_rawframes.txt").read_text().splitlines()
    flow = (ann / "synthetic_train_split_1_flow.txt").read_text().splitlines()
    videos = (ann / "synthetic_train_split_1_videos.txt").read_text().splitlines()
    assert len(rgb) == len(flow) == len(videos) == 4
    for rgb_line, flow_line, video_line in zip(rgb, flow, videos):
        video_id, n, label = rgb_line.split(" ")
        assert flow_line == f"{video_id} {int(n) - 1} {label}"
        assert classes[int(label)] == video_id.split("/")[0]
        assert video_line.rsplit(" ", 1) == [video_line.split(" ")[0], label]
        assert video_line.startswith(video_id + ".")
    paddle = (ann / "paddle" / "synthetic_val_split_1_frames.txt").read_text().splitlines()[0].split(" ")
    # the frame folder as it is on disk (PaddleVideo's FrameDataset reads frame_dir/img_{:05}.jpg, any folder name)
    assert (root / "rawframes" / paddle[0] / "img_00001.jpg").is_file()
    assert int(paddle[2]) == classes.index(paddle[0].split("/")[0])
    assert (ann / "paddle" / "label_list.txt").read_text().splitlines()[1] == f"1 {classes[1]}"
    resnets = json.loads((ann / "synthetic_01.json").read_text())
    assert resnets["labels"] == classes
    entry = resnets["database"][rgb[0].split(" ")[0].split("/")[1]]
    assert entry == {"subset": "training", "annotations": {"label": rgb[0].split("/")[0],
                                                           "segment": [1, int(rgb[0].split(" ")[1]) + 1]}}
    table = pd.read_parquet(ann / "manifest.parquet")
    assert {"video_id", "class_name", "label", "split_1", "video_path", "fps", "width", "height", "n_frames",
            "n_flow", "status"} <= set(table.columns)
    assert (table["n_flow"] == table["n_frames"] - 1).all() and set(table["status"]) == {"ok"}
    assert json.loads(table.attrs["naming"])["rgb"] == "img_{:05d}.jpg"


def test_check_names_the_broken_video_and_fails(synthetic_small, tmp_path):
    import shutil

    root = synthetic_small["root"]
    flow = tmp_path / "flow"
    shutil.copytree(root / "flow", flow)
    manifest = build_manifest(synthetic_small["index"], read_reports([root / "frames.csv"]),
                              read_reports([root / "flow.csv"]))
    write_annotations(manifest, synthetic_small["classes"], "synthetic", tmp_path / "ann")
    ok = run_prep("check", tmp_path / "ann", "--frames", root / "rawframes", "--flow", flow, "--out", tmp_path / "ok")
    assert "8 videos consistent" in ok.stdout and (tmp_path / "ok").is_file()
    victim = synthetic_small["index"]["video_id"][1]
    sorted((flow / victim).glob("flow_y_*.jpg"))[-1].unlink()
    bad = run_prep("check", tmp_path / "ann", "--frames", root / "rawframes", "--flow", flow,
                   "--out", tmp_path / "bad", check=False)
    assert bad.returncode != 0 and victim in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_lists_from_an_existing_rawframes_tree(synthetic_small, tmp_path):
    import shutil

    root = synthetic_small["root"]
    tree = tmp_path / "rawframes"
    shutil.copytree(root / "rawframes", tree)
    for video_dir in (root / "flow").glob("*/*"):  # the mmaction2 layout: flow beside the frames
        for f in video_dir.iterdir():
            shutil.copy(f, tree / video_dir.relative_to(root / "flow") / f.name)
        (tree / video_dir.relative_to(root / "flow") / "n_frames").unlink()
    run_prep("lists", "synthetic", "--splits", root / "raw" / "splits", "--frames", tree, "--out", tmp_path / "ann")
    reference = tmp_path / "reference"
    manifest = build_manifest(synthetic_small["index"], read_reports([root / "frames.csv"]),
                              read_reports([root / "flow.csv"]))
    write_annotations(manifest, synthetic_small["classes"], "synthetic", reference)
    for name in ("synthetic_train_split_1_rawframes.txt", "synthetic_val_split_1_flow.txt", "synthetic_01.json"):
        assert (tmp_path / "ann" / name).read_text() == (reference / name).read_text()
    assert all((d / "n_frames").is_file() for d in tree.glob("*/*"))
