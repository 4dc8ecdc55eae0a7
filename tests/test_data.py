"""Sampling indices against hand-worked mmaction2 SampleFrames examples, transforms, the dataset's tensors."""
import numpy as np
import pytest
import torch

from train.data import RawframeDataset, normalize_on_device, sample_clips
from train.data.transforms import horizontal_flip, multi_scale_crop_box, three_crop


def test_tsn_test_sampling_takes_segment_centres():
    # 30 frames, 3 segments of 10: centres at offsets 5, 15, 25 → frames 6, 16, 26 (1-based)
    assert sample_clips(30, 3, test_mode=True).tolist() == [[[6], [16], [26]]]


def test_tsn_train_sampling_takes_one_frame_inside_each_segment():
    rng = np.random.default_rng(0)
    for _ in range(50):
        frames = sample_clips(30, 3, rng=rng)[0, :, 0]
        assert 1 <= frames[0] <= 10 and 11 <= frames[1] <= 20 and 21 <= frames[2] <= 30


def test_flow_stack_is_consecutive_and_fits():
    # 23 flow frames, 3 segments × 5: avg_interval = (23-5+1)/3 = 6.33 → offsets int(3.17)=3, int(9.5)=9, 15
    assert sample_clips(23, 3, clip_len=5, test_mode=True).tolist() == [
        [[4, 5, 6, 7, 8], [10, 11, 12, 13, 14], [16, 17, 18, 19, 20]]]


def test_dense_clip_centre_and_wrap():
    # I3D 8×2 on 30 frames: span 16, one clip, avg_interval 15 → offset int(7.5) = 7 → frames 8, 10, …, 22
    assert sample_clips(30, 1, clip_len=8, frame_interval=2, test_mode=True).tolist() == [
        [[8, 10, 12, 14, 16, 18, 20, 22]]]
    # shorter than the clip: starts at frame 1 and loops, as mmaction2's out_of_bound_opt='loop'
    assert sample_clips(5, 1, clip_len=4, frame_interval=2, test_mode=True).tolist() == [[[1, 3, 5, 2]]]


def test_test_views_spread_evenly():
    views = sample_clips(40, 2, test_mode=True, views=2)
    # 4 clips over 40 frames: centres at 6, 16, 26, 36; view 0 takes clips 0 and 2, view 1 clips 1 and 3
    assert views.tolist() == [[[6], [26]], [[16], [36]]]


def test_multi_scale_crop_boxes_fit_and_use_the_scales():
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(200):
        top, left, h, w = multi_scale_crop_box(256, 340, 224, rng)
        assert top + h <= 256 and left + w <= 340
        sizes.add((h, w))
        assert abs([256, 224, 192, 168].index(h) - [256, 224, 192, 168].index(w)) <= 1
    assert (256, 256) in sizes and (168, 168) in sizes


def test_flip_negates_horizontal_flow_only():
    flow = np.zeros((1, 2, 3, 2), np.uint8)
    flow[..., 0] = [[10, 20, 30], [40, 50, 60]]
    flow[..., 1] = 77
    flipped = horizontal_flip(flow, is_flow=True)
    assert flipped[0, :, :, 0].tolist() == [[225, 235, 245], [195, 205, 215]]
    assert (flipped[..., 1] == 77).all()
    rgb = horizontal_flip(flow, is_flow=False)
    assert rgb[0, :, :, 0].tolist() == [[30, 20, 10], [60, 50, 40]]


def test_three_crop_covers_the_long_side():
    frames = np.arange(10 * 16).reshape(1, 10, 16, 1).astype(np.uint8)
    crops = three_crop(frames, 10)
    assert [c[0, 0, 0, 0] for c in crops] == [0, 3, 6]


def test_normalisation():
    clip = torch.full((1, 3, 1, 1, 1), 255, dtype=torch.uint8)
    assert torch.allclose(normalize_on_device(clip, "rgb", "unit"), torch.ones(1, 3, 1, 1, 1))
    rgb = normalize_on_device(clip, "rgb")
    assert torch.allclose(rgb.flatten(), torch.tensor([(255 - 123.675) / 58.395, (255 - 116.28) / 57.12,
                                                       (255 - 103.53) / 57.375]))


def test_dataset_tensors_follow_the_layouts(synthetic_small):
    root = synthetic_small["root"]
    lists = root / "lists"
    lists.mkdir(exist_ok=True)
    rows = [r for r in synthetic_small["frames"]]
    (lists / "rgb.txt").write_text("".join(f"{r['video_id']} {r['n_frames']} 0\n" for r in rows))
    (lists / "flow.txt").write_text("".join(f"{r['video_id']} {r['n_frames'] - 1} 0\n" for r in rows))
    tsn_flow = RawframeDataset(lists / "flow.txt", root / "flow", "flow", num_clips=2, clip_len=3, input_size=32,
                               resize_short=40, flip=False)
    clip, label, index = tsn_flow[0]
    assert clip.shape == (6, 2, 32, 32) and clip.dtype == torch.uint8
    i3d_rgb = RawframeDataset(lists / "rgb.txt", root / "rawframes", "rgb", num_clips=1, clip_len=4,
                              frame_interval=2, layout="clip", test_mode=True, input_size=32, resize_short=40,
                              views=2, crops="three")
    clips, _, _ = i3d_rgb[0]
    assert clips.shape == (6, 3, 4, 32, 32)
    # the segments layout stacks x/y pairs in frame order: channel 0 = flow_x of the first frame
    import cv2
    video_id = rows[0]["video_id"]
    test_flow = RawframeDataset(lists / "flow.txt", root / "flow", "flow", num_clips=1, clip_len=2,
                                test_mode=True, input_size=48, resize_short=48)
    stacked = test_flow[0][0][0]
    numbers = sample_clips(rows[0]["n_frames"] - 1, 1, clip_len=2, test_mode=True)[0, 0]
    expected_y2 = cv2.imread(str(root / "flow" / video_id / f"flow_y_{numbers[1]:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(stacked[3, 0].numpy(), expected_y2)


def test_training_randomness_is_reproducible_per_epoch(synthetic_small):
    root = synthetic_small["root"]
    rows = synthetic_small["frames"]
    path = root / "lists_rgb.txt"
    path.write_text("".join(f"{r['video_id']} {r['n_frames']} 0\n" for r in rows))
    a = RawframeDataset(path, root / "rawframes", "rgb", num_clips=3, input_size=32, resize_short=40, seed=5)
    b = RawframeDataset(path, root / "rawframes", "rgb", num_clips=3, input_size=32, resize_short=40, seed=5)
    assert torch.equal(a[1][0], b[1][0])
    b.set_epoch(1)
    assert not torch.equal(a[1][0], b[1][0])
