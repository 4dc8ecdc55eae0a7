"""Every rawframe, flow and video list we write, read by mmaction2's own RawframeDataset / VideoDataset.

mmaction2 1.2.0 (with mmengine and mmcv-lite 2.1.0) is installed by the ``peers`` extra into a venv of its own
(.ci/run: its packages require opencv-python, which would shadow opencv-contrib-python-headless's cv2.optflow).
The 1.2.0 wheel lacks ``mmaction/models/localizers/drn``, so ``register_all_modules()`` fails; importing
``mmaction.datasets`` registers the datasets and transforms, and a ``DefaultScope('mmaction')`` resolves them.

For UCF101-, HMDB51- and Kinetics-shaped datasets (Kinetics labels with spaces, parentheses, quotes and apostrophes)
made by the prep stages, each list is loaded with the test-time SampleFrames of TSN (25×1, mmaction2
configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py; flow: 25×5), TSM (8×1,
twice_sample as tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py's test pipeline) and I3D (10×32,
interval 2, i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py): every item loads (RawFrameDecode /
DecordDecode decode the sampled frames), every sampled index is a file on disk, and every label is the label map's
line for the video's class.
"""
import os
from pathlib import Path

import pytest

if os.environ.get("ACTIONFLOW_PEERS") != "required":  # .ci/run sets it in the peers venv: a missing mmaction fails
    pytest.importorskip("mmaction", reason="mmaction2 is installed in the peers venv (.ci/run, extra `peers`)")

import pandas as pd  # noqa: E402
from mmaction.datasets import RawframeDataset, VideoDataset  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from format_trees import prepared  # noqa: E402

pytestmark = pytest.mark.slow

SAMPLINGS = {
    "tsn": dict(clip_len=1, frame_interval=1, num_clips=25),
    "tsm": dict(clip_len=1, frame_interval=1, num_clips=8, twice_sample=True),
    "i3d": dict(clip_len=32, frame_interval=2, num_clips=10),
}
FLOW_SAMPLINGS = {"tsn": dict(clip_len=5, frame_interval=1, num_clips=25), **{k: SAMPLINGS[k] for k in ("tsm", "i3d")}}
# mmaction2's flow file templates: the default layout and its Kinetics-400 flow configs' '{}_{:05d}.jpg'
FLOW_TEMPLATES = {"mmaction": "flow_{}_{:05d}.jpg", "mmaction_k400_flow": "{}_{:05d}.jpg"}


@pytest.fixture(scope="module", autouse=True)
def mmaction_scope():
    DefaultScope.get_instance("actionflow-peers", scope_name="mmaction")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers")
    made = {name: prepared(name, root / name) for name in ("ucf101", "hmdb51", "kinetics400")}
    k400 = made["kinetics400"]
    made["kinetics400_k400_flow"] = prepared("kinetics400", root / "k400_flow", flow_naming="mmaction_k400_flow",
                                             videos=k400["videos"], splits=k400["splits"])
    return made


def lists_of(tree, kind):
    found = sorted(tree["annotations"].glob(f"*_{kind}.txt")) + sorted(tree["annotations"].glob(f"paddle/*_{kind}.txt"))
    assert found, f"no *_{kind}.txt in {tree['annotations']}"
    return found


def class_of(tree):
    """{listed path: class name} from the manifest (frame and flow folders, video files)."""
    manifest = pd.read_parquet(tree["annotations"] / "manifest.parquet")
    classes = {}
    for column in ("frame_dir", "flow_dir", "video_path"):
        classes.update(zip(manifest[column], manifest["class_name"]))
    return classes


def check_items(dataset, tree, where, files_of):
    label_map = (tree["annotations"] / "label_map.txt").read_text().splitlines()
    classes = class_of(tree)
    assert len(dataset) > 0
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        results = dataset[i]  # the pipeline runs: sampling and decoding
        listed = Path(info.get("frame_dir") or info["filename"]).relative_to(where).as_posix()
        assert label_map[results["label"]] == classes[listed], listed
        assert len(results["frame_inds"]) and len(results["imgs"]) > 0
        for index in results["frame_inds"]:
            for path in files_of(results, int(index)):
                assert os.path.isfile(path), f"{listed}: sampled frame {index}: {path} is not on disk"


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51", "kinetics400"])
@pytest.mark.parametrize("model", sorted(SAMPLINGS))
def test_rawframe_lists(trees, dataset, model):
    tree = trees[dataset]
    pipeline = [dict(type="SampleFrames", test_mode=True, **SAMPLINGS[model]), dict(type="RawFrameDecode")]
    for ann_file in [f for f in lists_of(tree, "rawframes") + lists_of(tree, "frames")]:
        data = RawframeDataset(str(ann_file), pipeline, data_prefix=dict(img=str(tree["rawframes"])),
                               filename_tmpl="img_{:05}.jpg", test_mode=True)
        check_items(data, tree, tree["rawframes"],
                    lambda results, k: [Path(results["frame_dir"]) / results["filename_tmpl"].format(k)])


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51", "kinetics400", "kinetics400_k400_flow"])
@pytest.mark.parametrize("model", sorted(FLOW_SAMPLINGS))
def test_flow_lists(trees, dataset, model):
    tree = trees[dataset]
    template = FLOW_TEMPLATES["mmaction_k400_flow" if dataset.endswith("k400_flow") else "mmaction"]
    pipeline = [dict(type="SampleFrames", test_mode=True, **FLOW_SAMPLINGS[model]), dict(type="RawFrameDecode")]
    for ann_file in lists_of(tree, "flow"):
        data = RawframeDataset(str(ann_file), pipeline, data_prefix=dict(img=str(tree["flow"])),
                               filename_tmpl=template, modality="Flow", test_mode=True)
        check_items(data, tree, tree["flow"],
                    lambda results, k: [Path(results["frame_dir"]) / template.format(axis, k) for axis in "xy"])


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51", "kinetics400"])
@pytest.mark.parametrize("model", sorted(SAMPLINGS))
def test_video_lists(trees, dataset, model):
    tree = trees[dataset]
    pipeline = [dict(type="DecordInit"), dict(type="SampleFrames", test_mode=True, **SAMPLINGS[model]),
                dict(type="DecordDecode")]
    manifest = pd.read_parquet(tree["annotations"] / "manifest.parquet").set_index("video_path")
    for ann_file in lists_of(tree, "videos"):
        data = VideoDataset(str(ann_file), pipeline, data_prefix=dict(video=str(tree["videos"])), test_mode=True)

        def decoded_frames(results, k, data=data):
            # a video's frames are the decoded ones: index k (0-based in a video) must be one of them
            listed = Path(results["filename"]).relative_to(tree["videos"]).as_posix()
            assert 0 <= k < manifest.loc[listed, "n_frames"] == results["total_frames"]
            return [results["filename"]]

        check_items(data, tree, tree["videos"], decoded_frames)


def test_kinetics_lists_hold_no_whitespace_and_the_label_map_the_real_names(trees):
    tree = trees["kinetics400"]
    labels = (tree["annotations"] / "label_map.txt").read_text().splitlines()
    assert "passing American football (in game)" in labels and "massaging person's head" in labels
    for ann_file in lists_of(tree, "rawframes") + lists_of(tree, "flow") + lists_of(tree, "videos"):
        for line in ann_file.read_text().splitlines():
            assert len(line.split()) in (2, 3), line
