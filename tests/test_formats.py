"""The layout facts of the toolboxes that are not on PyPI, taken from their source, checked on what we write.

- PaddleVideo: ``FrameDataset.load_file`` splits each line with ``line.strip().split()`` into ``frame_dir
  frames_len labels`` and reads ``frame_dir/img_{:05}.jpg`` (PaddlePaddle/PaddleVideo
  paddlevideo/loader/dataset/frame.py); its ``data/k400/extract_rawframes.py`` names a frame folder after the video
  file (``class/x.mp4/img_00001.jpg``): any folder name works, ours is the one on disk.
- 3D-ResNets-PyTorch / MindSpore-I3D: ``get_loader`` (mindspore-ai/models research/cv/I3D/src/get_dataset.py) takes
  ``database`` entries whose ``subset`` matches, joins ``root/<annotations.label>/<key>``, skips a missing folder
  silently, requires an ``n_frames`` file there (also in flow folders), reads ``image_{:05d}.jpg`` (rgb) or
  ``image_{:05d}x.jpg`` / ``image_{:05d}y.jpg`` (flow) for 1..n_frames, label = position in ``labels``. Its flow
  converter (src/tools/convert_rgb_to_flow.py ``cal_for_frames``) starts with ``prev = frame 1`` and loops over every
  frame, so flow 1 is frame 1 → frame 1 (zero) and flow k the motion from frame k−1 into frame k; ``save_flow``
  writes x (channel 0) and y into the same folder; ``generate_n_frames.py`` writes the largest image index.
- denseflow (open-mmlab/denseflow src/common.cpp ``convertFlowToImage``): ``v > H ? 255 : v < L ? 0 :
  cvRound(255*(v - L)/(H - L))`` with float v and double bounds, i.e. double arithmetic, cvRound half to even.
- mmaction2's Kinetics class folders (open-mmlab/mmaction2 tools/data/kinetics/rename_classnames.sh):
  ``newclass=`echo $class | tr " " "_"```.
"""
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from format_trees import prepared, run_prep
from prep.base.errors import UserError
from prep.datasets import kinetics400
from prep.base.optical_flow import create_estimator, quantize


def denseflow_cast(value, bound):
    """denseflow's CAST macro, element by element in Python floats (IEEE double); Python's round() and cvRound
    (lrint / cvtsd2si under the default rounding mode) both round half to even."""
    low, high = -float(bound), float(bound)
    return 255 if value > high else 0 if value < low else round(255 * (value - low) / (high - low))


def test_quantize_equals_denseflow_in_double_precision():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-21, 21, 200_000), [-20, 20, 0, -1e-9, 1e-9, 19.9999, -25, 25]])
    values = values.astype(np.float32)  # TV-L1 gives float32; the formula promotes to double
    expected = np.array([denseflow_cast(float(v), 20) for v in values], dtype=np.uint8)
    assert np.array_equal(quantize(values, 20), expected)
    assert quantize(np.float32([0.0]), 20).tolist() == [128]  # 127.5 exactly: half to even
    # single precision lands a level off on a few values in a million: here, the same seed, 6 of 1e6
    many = np.random.default_rng(0).uniform(-21, 21, 1_000_000).astype(np.float32)
    single = np.floor((np.clip(many, -20, 20) + np.float32(20)) * np.float32(255 / 40) + np.float32(0.5))
    assert 0 < np.count_nonzero(single.astype(np.uint8) != quantize(many, 20)) < 20


def test_mmaction2_class_folder_rule():
    folder = kinetics400.mmaction2_class_folder
    assert folder("passing American football (in game)") == "passing_American_football_(in_game)"
    assert folder("massaging person's head") == "massaging_person's_head"
    assert folder('say "cheese"') == 'say_"cheese"'
    assert folder("a  b ") == "a_b"  # the unquoted `echo $class` collapses and trims whitespace
    assert kinetics400.class_folder("a b", "label") == "a b"


def test_labels_sharing_a_class_folder_are_refused(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("label,youtube_id,time_start,time_end,split\na b,x,0,10,train\na_b,y,0,10,train\n")
    with pytest.raises(UserError, match="share the class folder 'a_b'"):
        kinetics400.read_index(csv_path)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    ucf = prepared("ucf101", root / "ucf101")
    k400 = prepared("kinetics400", root / "kinetics400")
    return {
        "ucf101": ucf,
        "ucf101_3dresnets": prepared("ucf101", root / "ucf101_3d", naming="3dresnets", flow_naming="3dresnets",
                                     videos=ucf["videos"], splits=ucf["splits"]),
        "kinetics400": k400,
        "kinetics400_3dresnets": prepared("kinetics400", root / "k400_3d", naming="3dresnets",
                                          flow_naming="3dresnets", class_folders="label", videos=k400["videos"],
                                          splits=k400["splits"]),
    }


def paddle_frame_dataset(list_path, data_prefix, suffix="img_{:05}.jpg"):
    """What PaddleVideo's FrameDataset.load_file makes of a list, and the frame files its decoder opens."""
    items = []
    for line in Path(list_path).read_text().splitlines():
        frame_dir, frames_len, labels = line.strip().split()
        frame_dir = os.path.join(data_prefix, frame_dir)
        items.append((frame_dir, int(frames_len), int(labels)))
    return items


@pytest.mark.parametrize("dataset", ["ucf101", "kinetics400"])
def test_paddlevideo_lists_name_what_is_on_disk(trees, dataset):
    tree = trees[dataset]
    ann = tree["annotations"]
    labels = [line.split(" ", 1) for line in (ann / "paddle" / "label_list.txt").read_text().splitlines()]
    assert [int(i) for i, _ in labels] == list(range(len(labels)))
    assert [name for _, name in labels] == (ann / "label_map.txt").read_text().splitlines()
    frame_lists = sorted((ann / "paddle").glob("*_frames.txt"))
    assert frame_lists
    for list_path in frame_lists:
        for frame_dir, frames_len, label in paddle_frame_dataset(list_path, tree["rawframes"]):
            assert 0 <= label < len(labels)
            assert all(os.path.isfile(os.path.join(frame_dir, f"img_{k:05}.jpg")) for k in range(1, frames_len + 1))
    for list_path in sorted((ann / "paddle").glob("*_videos.txt")):
        for line in list_path.read_text().splitlines():
            filename, label = line.strip().split()
            assert (tree["videos"] / filename).is_file() and filename.endswith((".avi", ".mp4"))


def mindspore_dataset(root, annotation_path, subset):
    """get_loader's make_dataset (src/get_dataset.py) without its silent skip: each entry's folder, n_frames, label."""
    data = json.loads(Path(annotation_path).read_text())
    class_to_idx = {label: i for i, label in enumerate(data["labels"])}
    samples = []
    for key, value in data["database"].items():
        if value["subset"] != subset:
            continue
        video_path = os.path.join(root, f"{value['annotations']['label']}/{key}")
        assert os.path.exists(video_path), f"get_loader would skip {video_path}"
        n_frames = int(Path(video_path, "n_frames").read_text())  # load_value_file
        assert n_frames > 0
        samples.append((video_path, n_frames, class_to_idx[value["annotations"]["label"]]))
    return samples


@pytest.mark.parametrize("dataset,json_name", [("ucf101_3dresnets", "ucf101_01.json"),
                                               ("kinetics400_3dresnets", "kinetics400.json")])
def test_mindspore_i3d_get_loader_reads_rgb_and_flow(trees, dataset, json_name):
    tree = trees[dataset]
    ann = tree["annotations"]
    data = json.loads((ann / json_name).read_text())
    assert set(data) == {"labels", "database"} and data["labels"] == (ann / "label_map.txt").read_text().splitlines()
    subsets = {entry["subset"] for entry in data["database"].values()}
    assert subsets == {"training", "validation"}  # one file for both (3D-ResNets takes one)
    for subset in ("training", "validation"):
        rgb = mindspore_dataset(tree["rawframes"], ann / json_name, subset)
        flow = mindspore_dataset(tree["flow"], ann / json_name, subset)
        assert len(rgb) == len(flow) == sum(e["subset"] == subset for e in data["database"].values())
        for (rgb_dir, n_rgb, label), (flow_dir, n_flow, flow_label) in zip(rgb, flow):
            assert n_flow == n_rgb and label == flow_label
            segment = data["database"][Path(rgb_dir).name]["annotations"]["segment"]
            assert segment == [1, n_rgb + 1]
            for k in range(1, n_rgb + 1):
                assert os.path.exists(os.path.join(rgb_dir, f"image_{k:05d}.jpg"))
                assert os.path.exists(os.path.join(flow_dir, f"image_{k:05d}x.jpg"))
                assert os.path.exists(os.path.join(flow_dir, f"image_{k:05d}y.jpg"))
            assert not os.path.exists(os.path.join(rgb_dir, f"image_{n_rgb + 1:05d}.jpg"))


def test_mindspore_flow_k_is_the_motion_into_frame_k(trees):
    """Flow 1 is frame 1 → frame 1 (zero motion, up to the estimator); flow k+1 of the MindSpore layout is byte for byte flow k of mmaction's
    (both frame k → k+1, from the same frames)."""
    mm, ms = trees["ucf101"], trees["ucf101_3dresnets"]
    video_id = (mm["annotations"] / "ucf101_train_split_1_rawframes.txt").read_text().split()[0]
    n = int(Path(ms["flow"], video_id, "n_frames").read_text())
    assert n == int(Path(ms["rawframes"], video_id, "n_frames").read_text())
    first = cv2.cvtColor(cv2.imread(str(Path(ms["rawframes"], video_id, "image_00001.jpg"))), cv2.COLOR_BGR2GRAY)
    still = create_estimator("farneback")(first, first)  # the trees' algorithm (format_trees.prepared)
    for axis, name in enumerate("xy"):
        expected = cv2.imencode(".jpg", quantize(still[..., axis], 20), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
        assert Path(ms["flow"], video_id, f"image_00001{name}.jpg").read_bytes() == expected.tobytes()
    for axis in "xy":
        for k in range(1, n):
            assert (Path(ms["flow"], video_id, f"image_{k + 1:05d}{axis}.jpg").read_bytes()
                    == Path(mm["flow"], video_id, f"flow_{axis}_{k:05d}.jpg").read_bytes())


def test_each_file_is_written_only_where_its_paths_exist(trees):
    """Kinetics in mmaction2's folder form: lists yes, the JSON no (its root/label/key would not exist); in the
    label form: the JSON yes, whitespace-split lists no."""
    renamed, labelled = trees["kinetics400"]["annotations"], trees["kinetics400_3dresnets"]["annotations"]
    assert (renamed / "kinetics400_train_list_rawframes.txt").is_file()
    assert not (renamed / "kinetics400.json").exists()
    assert (labelled / "kinetics400.json").is_file()
    assert not list(labelled.glob("*_rawframes.txt")) and not list(labelled.glob("paddle/*_frames.txt"))
    assert (labelled / "kinetics400_train_list_videos.txt").is_file()  # the arranged videos stay space-free
    for ann in (renamed, labelled):
        assert "passing American football (in game)" in (ann / "label_map.txt").read_text().splitlines()


def copy_as(src_root, video_ids, dst_root, rename):
    for video_id in video_ids:
        for suffix in ("", ".pack"):
            src = Path(f"{src_root / video_id}{suffix}")
            if src.exists():
                dst = Path(f"{dst_root / rename(video_id)}{suffix}")
                dst.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)


def listed_paths_exist(ann, frames_root, flow_root, naming_rgb, naming_flow):
    lines = 0
    for list_path in sorted(ann.glob("*_rawframes.txt")) + sorted(ann.glob("*_flow.txt")):
        root, name = (flow_root, naming_flow) if list_path.name.endswith("_flow.txt") else (frames_root, naming_rgb)
        for line in list_path.read_text().splitlines():
            folder, count, _label = line.split()
            for k in range(1, int(count) + 1):
                path = Path(root, folder, name(k))
                packed = Path(f"{Path(root, folder)}.pack")
                assert path.is_file() or packed.is_file(), path
            lines += 1
    return lines


LAYOUTS = {
    # name: (tree, rename a video id, flow beside the frames, --class-folders)
    "class folders": ("ucf101", lambda v: v, False, "mmaction2"),
    "flat": ("kinetics400", lambda v: v.rsplit("/", 1)[1], False, "mmaction2"),
    "PaddleVideo folders": ("ucf101", lambda v: f"{v}.avi", False, "mmaction2"),
    "Kinetics 0.x folders": ("kinetics400", lambda v: v.replace("(", "-").replace(")", "-"), False, "mmaction2"),
    "mmaction2 flow beside frames": ("kinetics400", lambda v: v, True, "mmaction2"),
    "3D-ResNets": ("ucf101_3dresnets", lambda v: v, False, "mmaction2"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_prep_lists_on_trees_by_other_tools(trees, layout, tmp_path):
    name, rename, beside, class_folders = LAYOUTS[layout]
    tree = trees[name]
    naming = "3dresnets" if name.endswith("3dresnets") else "mmaction"
    ids = list(pd.read_parquet(tree["annotations"] / "manifest.parquet")["video_id"])
    frames, flow = tmp_path / "frames", tmp_path / ("frames" if beside else "flow")
    copy_as(tree["rawframes"], ids, frames, rename)
    if beside:  # mmaction2's layout: flow_x_/flow_y_ in the frame folder
        for video_id in ids:
            shutil.copytree(tree["flow"] / video_id, frames / rename(video_id), dirs_exist_ok=True)
    else:
        copy_as(tree["flow"], ids, flow, rename)
    if naming == "mmaction":
        for marker in frames.rglob("n_frames"):
            marker.unlink()  # other tools write none: counted from the files
    run_prep("lists", tree["dataset"], "--splits", tree["splits"], "--frames", frames, "--flow", flow,
             "--videos", tree["videos"], "--out", tmp_path / "ann", "--naming", naming, "--class-folders",
             class_folders)
    rgb_name = (lambda k: f"image_{k:05d}.jpg") if naming == "3dresnets" else (lambda k: f"img_{k:05d}.jpg")
    flow_name = (lambda k: f"image_{k:05d}x.jpg") if naming == "3dresnets" else (lambda k: f"flow_x_{k:05d}.jpg")
    assert listed_paths_exist(tmp_path / "ann", frames, flow, rgb_name, flow_name) == 2 * len(ids)

    def counts_and_labels(ann):
        return sorted(line.split()[1:] for path in sorted(ann.glob("*_rawframes.txt"))
                      for line in path.read_text().splitlines())

    assert counts_and_labels(tmp_path / "ann") == counts_and_labels(tree["annotations"])  # as the pipeline's lists


def test_prep_lists_on_packed_trees(tmp_path):
    tree = prepared("hmdb51", tmp_path / "packed", pack=True)
    assert list(tree["rawframes"].rglob("*.pack")) and not list(tree["rawframes"].rglob("img_00001.jpg"))
    run_prep("lists", "hmdb51", "--splits", tree["splits"], "--frames", tree["rawframes"], "--flow", tree["flow"],
             "--out", tmp_path / "ann")
    assert (tmp_path / "ann" / "hmdb51_train_split_1_rawframes.txt").read_text() == \
        (tree["annotations"] / "hmdb51_train_split_1_rawframes.txt").read_text()
    assert not (tmp_path / "ann" / "hmdb51_train_split_1_videos.txt").exists()  # no --videos: no video paths


def test_prep_lists_on_an_empty_tree_is_one_clear_line(trees, tmp_path):
    from tests.conftest import run_prep as run_prep_cli

    (tmp_path / "empty").mkdir()
    tree = trees["ucf101"]
    result = run_prep_cli("lists", "ucf101", "--splits", tree["splits"], "--frames", tmp_path / "empty", "--out",
                          tmp_path / "ann", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "none of the 4 videos" in result.stderr


@pytest.mark.parametrize("dataset", ["ucf101", "ucf101_3dresnets"])
def test_report_reads_the_trees_in_the_manifests_namings(trees, dataset, tmp_path, monkeypatch):
    from train import report

    tree, read, images = trees[dataset], report._read_frame, []
    monkeypatch.setattr(report, "_read_frame", lambda *args, **kwargs: images.append(read(*args, **kwargs)) or
                        images[-1])
    manifest = report.read_manifest(tree["annotations"])
    samples = report.plot_flow_samples(manifest, tree["rawframes"], tree["flow"], tmp_path / "flow.png")
    assert samples and len(images) == 2 * len(samples) and all(image is not None for image in images)  # rgb, flow


@pytest.mark.parametrize("dataset", ["ucf101", "ucf101_3dresnets", "kinetics400"])
def test_the_gate_passes_each_naming_and_names_a_missing_flow_frame(trees, dataset, tmp_path):
    from tests.conftest import run_prep as run_prep_cli

    tree = trees[dataset]
    args = ["check", tree["annotations"], "--frames", tree["rawframes"], "--flow", tree["flow"]]
    assert run_prep_cli(*args).returncode == 0
    flow = shutil.copytree(tree["flow"], tmp_path / "flow")
    video_id = next(tree["annotations"].glob("*_flow.txt")).read_text().split()[0]
    last = sorted(p for p in (flow / video_id).iterdir() if p.name.endswith("x.jpg") or "_x_" in p.name
                  or p.name.startswith("x_"))[-1]
    last.unlink()
    result = run_prep_cli(*args[:-1], flow, check=False)
    assert result.returncode != 0 and video_id in result.stderr and "Traceback" not in result.stderr
