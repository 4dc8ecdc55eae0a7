"""The seeds' test protocols against mmaction2's own transforms (mmaction2 1.2.0 in the peers venv, see
test_mmaction2_loaders.py): for each seed row's test settings, the frame numbers mmaction2's SampleFrames /
DenseSampleFrames give equal our eval sampler's, and its Resize + ThreeCrop / CenterCrop boxes equal ours."""
import os

import numpy as np
import pytest

if os.environ.get("ACTIONFLOW_PEERS") != "required":
    pytest.importorskip("mmaction", reason="mmaction2 is installed in the peers venv (.ci/run, extra `peers`)")

import mmaction.datasets  # noqa: E402,F401  (registers the transforms)
from mmaction.registry import TRANSFORMS  # noqa: E402

from train.data.transforms import eval_crop_boxes, resized_shape  # noqa: E402
from train.presets import eval_protocol, eval_sampler  # noqa: E402
from train.recipe import load_config, settings_for  # noqa: E402

CONFIG = load_config()
# (model, dataset, test mode) -> mmaction2's test-time sampling of that seed row's config
ROWS = {
    ("tsn-1x1x8", "kinetics400", True): dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=25),
    ("tsn", "kinetics400", True): dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=25),
    ("tsm", "kinetics400", True): dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8,
                                       twice_sample=True),
    ("tsm", "kinetics400", False): dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8),
    ("tsm-mobilenet-v2", "kinetics400", False): dict(type="DenseSampleFrames", clip_len=1, frame_interval=1,
                                                     num_clips=8),
    ("tsm-mobilenet-v2", "kinetics400", True): dict(type="DenseSampleFrames", clip_len=1, frame_interval=1,
                                                    num_clips=8),
    ("i3d-dense", "kinetics400", False): dict(type="DenseSampleFrames", clip_len=32, frame_interval=2, num_clips=1),
    ("i3d", "kinetics400", True): dict(type="SampleFrames", clip_len=32, frame_interval=2, num_clips=10),
}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r[0]}-{'accurate' if r[2] else 'efficient'}")
@pytest.mark.parametrize("num_frames", [7, 40, 250, 300])
def test_sampled_frames_equal_mmaction2(row, num_frames):
    model, dataset, accurate = row
    settings = settings_for(CONFIG, model, dataset, "rgb")
    theirs = TRANSFORMS.build({**ROWS[row], "test_mode": True})(
        {"total_frames": num_frames, "start_index": 1})["frame_inds"]
    ours = eval_sampler(settings, accurate)(num_frames)
    assert ours.reshape(-1).tolist() == np.asarray(theirs).reshape(-1).tolist()


@pytest.mark.parametrize("shape", [(240, 320), (256, 340), (360, 640)])
@pytest.mark.parametrize("crops, size", [("three", 256), ("center", 224), ("center", 256)])
def test_crops_equal_mmaction2(shape, crops, size):
    height, width = resized_shape(*shape, 256)
    results = TRANSFORMS.build(dict(type="Resize", scale=(-1, 256)))(
        {"imgs": [np.zeros((*shape, 3), dtype=np.uint8)], "img_shape": shape, "modality": "RGB"})
    assert results["img_shape"] == (height, width)
    crop = dict(type="ThreeCrop", crop_size=size) if crops == "three" else dict(type="CenterCrop", crop_size=size)
    theirs = np.asarray(TRANSFORMS.build(crop)(results)["crop_bbox"]).reshape(-1, 4).tolist()
    ours = [[left, top, left + w, top + h] for top, left, h, w, _ in eval_crop_boxes(height, width, size, crops)]
    assert ours == theirs
    settings = settings_for(CONFIG, "tsn-1x1x8", "kinetics400", "rgb")
    assert (eval_protocol(settings, True)["crops"], eval_protocol(settings, True)["crop_size"]) == ("three", 256)
