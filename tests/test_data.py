"""Sampling indices against hand-worked mmaction2 SampleFrames examples, crop boxes against MultiScaleCrop, the
transforms' pixels against a direct crop + resize, the dataset's tensors, chunked evaluation plans."""
import os
import pickle

import cv2
import numpy as np
import pytest
import torch

from prep.base.frame_source import open_frames
from train.data import (ClipBatch, ClipChunks, ClipSampler, ClipWriter, EvalTransform, FrameDataset, FrameSource,
                        TrainTransform, collate_clips, normalize_on_device, plan_chunks, release_batch, sample_clips,
                        shard_groups)
from train.data.transforms import (eval_crop_boxes, multi_scale_crop_box, random_crop_box, random_resized_crop_box,
                                   resized_shape)
from train.presets import make_dataset
from train.recipe import resolve


def test_tsn_test_sampling_takes_segment_centres():
    # 30 frames, 3 segments of 10: centres at offsets 5, 15, 25 → frames 6, 16, 26 (1-based)
    assert sample_clips(30, 3, test_mode=True).tolist() == [[[6], [16], [26]]]


def test_tsn_train_sampling_takes_one_frame_inside_each_segment():
    rng = np.random.default_rng(0)
    for _ in range(50):
        frames = sample_clips(30, 3, rng=rng)[0, :, 0]
        assert 1 <= frames[0] <= 10 and 11 <= frames[1] <= 20 and 21 <= frames[2] <= 30


def test_flow_stacks_spread_from_first_to_last_start():
    # mmaction2 1.x: clip_len 5 takes the 3D branch; 23 flow frames, max offset 23 - 5 = 18, 3 clips → 0, 9, 18
    assert sample_clips(23, 3, clip_len=5, test_mode=True).tolist() == [
        [[1, 2, 3, 4, 5], [10, 11, 12, 13, 14], [19, 20, 21, 22, 23]]]


def test_dense_clip_centre_and_wrap():
    # I3D 8×2 on 30 frames: test clip length 7·2 + 1 = 15, max offset 15 → 15 // 2 = 7 → frames 8, 10, …, 22
    assert sample_clips(30, 1, clip_len=8, frame_interval=2, test_mode=True).tolist() == [
        [[8, 10, 12, 14, 16, 18, 20, 22]]]
    # shorter than the clip: starts at frame 1 and loops, as mmaction2's out_of_bound_opt='loop'
    assert sample_clips(5, 1, clip_len=4, frame_interval=2, test_mode=True).tolist() == [[[1, 3, 5, 2]]]


def test_test_views_spread_evenly():
    views = sample_clips(40, 2, test_mode=True, views=2)
    # 4 clips over 40 frames: centres at 6, 16, 26, 36; view 0 takes clips 0 and 2, view 1 clips 1 and 3
    assert views.tolist() == [[[6], [26]], [[16], [36]]]
    # I3D, 3 views of one 4-frame clip on 20 frames: max offset 16, offsets round(k · 16 / 2) = 0, 8, 16
    assert sample_clips(20, 1, clip_len=4, test_mode=True, views=3)[:, 0, 0].tolist() == [1, 9, 17]


def test_twice_sample_as_mmaction2():
    # 2D: 16 frames, 4 segments of 4: centres 2, 6, 10, 14, then the segment starts 0, 4, 8, 12 (loading.py 294-295)
    sampler = ClipSampler(4, test_mode=True, twice_sample=True)
    assert sampler.num_views == 2
    assert sampler(16).tolist() == [[[3], [7], [11], [15]], [[1], [5], [9], [13]]]
    # 3D: 3 clips of 4 on 20 frames: 6 clips spaced 16 / (3 - 1) = 8 apart, 0 … 40, wrapping (loading.py 298-311)
    twice = sample_clips(20, 1, clip_len=4, test_mode=True, views=3, twice_sample=True)
    assert twice[:, 0, 0].tolist() == [1, 9, 17, 5, 13, 1]
    assert twice[3, 0].tolist() == [5, 6, 7, 8]
    # training ignores it
    assert ClipSampler(4, twice_sample=True)(16, np.random.default_rng(0)).shape == (1, 4, 1)


def test_dense_sampling_as_mmaction2():
    # DenseSampleFrames(clip_len=2, frame_interval=2, num_clips=2), sample_range 64 → clips 32 apart; 100 frames:
    # start positions 1 + 100 - 64 = 37, 3 test starts linspace(0, 36, 3) = 0, 18, 36
    dense = ClipSampler(2, clip_len=2, frame_interval=2, test_mode=True, views=3, kind="dense")
    assert dense(100).tolist() == [[[1, 3], [33, 35]], [[19, 21], [51, 53]], [[37, 39], [69, 71]]]
    # shorter than the range: one start, clips wrap around
    assert dense(40)[:, :, 0].tolist() == [[1, 33], [1, 33], [1, 33]]
    train = ClipSampler(1, clip_len=4, frame_interval=2, kind="dense")
    starts = {int(train(100, np.random.default_rng(seed))[0, 0, 0]) for seed in range(200)}
    assert min(starts) == 1 and max(starts) == 36  # randint(0, 37 - 1): starts 0 … 35


def test_temporal_crop_as_mindspore_i3d():
    # TemporalCenterCrop(8) of 20 frames: centre 10, begin 6 → frames 7 … 14; of 5 frames: looped 1 … 5, 1, 2, 3
    centre = ClipSampler(1, clip_len=8, test_mode=True, kind="temporal_crop")
    assert centre(20).tolist() == [[[7, 8, 9, 10, 11, 12, 13, 14]]]
    assert centre(5).tolist() == [[[1, 2, 3, 4, 5, 1, 2, 3]]]
    train = ClipSampler(1, clip_len=8, kind="temporal_crop")
    begins = {int(train(20, np.random.default_rng(seed))[0, 0, 0]) for seed in range(300)}
    assert begins == set(range(1, 13))  # randint(0, 20 - 8 - 1) inclusive: 0 … 11
    with pytest.raises(ValueError, match="one clip"):
        ClipSampler(2, clip_len=8, kind="temporal_crop")


def test_random_resized_and_random_crops():
    rng = np.random.default_rng(0)
    boxes = [random_resized_crop_box(256, 341, rng) for _ in range(300)]
    assert all(0 <= top and top + h <= 256 and 0 <= left and left + w <= 341 for top, left, h, w in boxes)
    areas = [h * w / (256 * 341) for _, _, h, w in boxes]
    assert min(areas) < 0.2 and max(areas) > 0.6
    assert random_resized_crop_box(10, 10, rng, area_range=(1.0, 1.0), aspect_ratio_range=(4, 4)) == (0, 0, 10, 10)
    crops = {random_crop_box(240, 320, 224, rng)[:2] for _ in range(200)}
    assert all(0 <= top <= 16 and 0 <= left <= 96 for top, left in crops) and len(crops) > 100


def test_multi_scale_crop_positions_gap_and_snap():
    def draws(n=400, **kwargs):
        rng = np.random.default_rng(0)
        return [multi_scale_crop_box(256, 340, 224, rng, **kwargs) for _ in range(n)]

    levels = [256, 224, 192, 168]
    five = draws()
    for top, left, h, w in five:
        assert top + h <= 256 and left + w <= 340
        assert abs(levels.index(h) - levels.index(w)) <= 1
        step_w, step_h = (340 - w) // 4, (256 - h) // 4
        assert (left // max(step_w, 1), top // max(step_h, 1)) in {(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)} or \
            (step_w == 0 or step_h == 0)
    assert {(h, w) for _, _, h, w in five} >= {(256, 256), (168, 168), (224, 192)}
    positions = {(left // ((340 - w) // 4), top // ((256 - h) // 4)) for top, left, h, w in draws(num_fixed_crops=13)
                 if h < 256}
    assert len(positions) == 13 and (1, 3) in positions and (2, 0) in positions
    squares = draws(scales=(1, 0.8), max_wh_scale_gap=0)  # the I3D configs: square crops of 256 or 204
    assert {(h, w) for _, _, h, w in squares} == {(256, 256), (204, 204)}
    # a side within 2 pixels of the input size is snapped to it (processing.py line 499): 256 · 0.87 = 222 → 224
    assert {(h, w) for _, _, h, w in draws(scales=(0.87,))} == {(224, 224)}
    with pytest.raises(ValueError, match="num_fixed_crops"):
        multi_scale_crop_box(256, 340, 224, np.random.default_rng(0), num_fixed_crops=7)


def test_test_crop_boxes_follow_mmaction2():
    assert eval_crop_boxes(256, 341, 224, "center") == [(16, 58, 224, 224, False)]
    # ThreeCrop of 256 on 256×341: left, right (2 · step), middle (step = 42)
    assert [b[:2] for b in eval_crop_boxes(256, 341, 256, "three")] == [(0, 0), (0, 84), (0, 42)]
    ten = eval_crop_boxes(256, 341, 224, "ten")
    assert [b[:2] for b in ten[:5]] == [(0, 0), (0, 116), (32, 0), (32, 116), (16, 58)] and all(b[4] for b in ten[5:])
    assert resized_shape(240, 320, 256) == (256, 341)


def write_frames(folder, frames, gray=False):
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames, start=1):
        if gray:
            cv2.imwrite(str(folder / f"flow_x_{k:05d}.jpg"), frame[..., 0])
            cv2.imwrite(str(folder / f"flow_y_{k:05d}.jpg"), frame[..., 1])
        else:
            cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def smooth_frames(count, height, width, channels, seed=0):
    """Smooth random images (JPEG keeps them close), different per frame."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (count, height // 8, width // 8, channels), dtype=np.uint8)
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)
                     for f in small])


def test_test_transform_crops_the_stored_frame_and_decodes_reduced(tmp_path):
    write_frames(tmp_path / "v", smooth_frames(4, 48, 64, 3))
    write_frames(tmp_path / "big", smooth_frames(4, 192, 256, 3))
    # stored at the resize size: each crop is a plain slice of the decoded frame
    transform = EvalTransform(ClipWriter(3, 32, "clip"), resize_short=48, crops="three")
    numbers = np.array([[[1, 3]], [[2, 4]]])  # 2 views of one 2-frame clip
    with open_frames(tmp_path, "v") as frames:
        clips = transform(frames, numbers)
        assert clips.shape == (6, 3, 2, 32, 32)
        for view in range(2):
            for crop, (top, left, h, w, _) in enumerate(eval_crop_boxes(48, 64, 32, "three")):
                for t, k in enumerate(numbers[view, 0]):
                    expected = frames.read(int(k))[top:top + h, left:left + w]
                    assert np.array_equal(clips[view * 3 + crop, :, t].permute(1, 2, 0).numpy(), expected)
        assert torch.equal(transform(frames, numbers, select=[4, 1]), clips[[4, 1]])
    # stored at 4× the resize size: the centre box (128² of 192×256) is decoded at 1/4 and is already 32²
    transform = EvalTransform(ClipWriter(3, 32, "clip"), resize_short=48, crops="center")
    with open_frames(tmp_path, "big") as frames:
        clip = transform(frames, np.array([[[2]]]))[0, :, 0].permute(1, 2, 0).numpy()
        reduced = frames.read(2, reduce=4)
        assert np.array_equal(clip, reduced[8:40, 16:48])
        full = frames.read(2)
        direct = cv2.resize(full[32:160, 64:192], (32, 32), interpolation=cv2.INTER_AREA)
        assert np.abs(clip.astype(int) - direct).mean() < 3  # the same picture as crop + resize of the full frame


def test_train_transform_flips_flow_and_stacks_pairs(tmp_path):
    flow = smooth_frames(6, 40, 40, 2, seed=1)
    write_frames(tmp_path / "f", flow, gray=True)
    writer = ClipWriter(2, 40, "segments", is_flow=True)
    transform = TrainTransform(writer, resize_short=40, scales=(1,), flip=True)
    numbers = np.array([[[1, 2], [4, 5]]])  # 2 segments × stacks of 2
    seen = set()
    with open_frames(tmp_path, "f", "flow") as frames:
        stored = {k: frames.read(k) for k in (1, 2, 4, 5)}
        for seed in range(12):
            clip = transform(frames, numbers, np.random.default_rng(seed))
            assert clip.shape == (4, 2, 40, 40)  # channels: x1, y1, x2, y2 of each segment
            first = torch.stack([clip[0, 1], clip[1, 1]], dim=-1).numpy()  # segment 1, its first flow frame (4)
            if np.array_equal(first, stored[4]):
                seen.add("plain")
                assert np.array_equal(clip[3, 0].numpy(), stored[2][..., 1])  # y of the 2nd frame of segment 0
            else:
                mirrored = stored[4][:, ::-1].copy()
                mirrored[..., 0] = 255 - mirrored[..., 0]  # mirrored motion goes the other way
                assert np.array_equal(first, mirrored)
                seen.add("flipped")
    assert seen == {"plain", "flipped"}


def test_normalisation():
    clip = torch.full((1, 3, 1, 1, 1), 255, dtype=torch.uint8)
    assert torch.allclose(normalize_on_device(clip, "rgb", "unit"), torch.ones(1, 3, 1, 1, 1))
    rgb = normalize_on_device(clip, "rgb")
    assert torch.allclose(rgb.flatten(), torch.tensor([(255 - 123.675) / 58.395, (255 - 116.28) / 57.12,
                                                       (255 - 103.53) / 57.375]))


def lists(synthetic_small):
    root = synthetic_small["root"]
    directory = root / "lists"
    directory.mkdir(exist_ok=True)
    rows = synthetic_small["frames"]
    (directory / "rgb.txt").write_text("".join(f"{r['video_id']} {r['n_frames']} 0\n" for r in rows))
    (directory / "flow.txt").write_text("".join(f"{r['video_id']} {r['n_frames'] - 1} 0\n" for r in rows))
    return directory


def test_dataset_tensors_follow_the_layouts(synthetic_small):
    root, directory, rows = synthetic_small["root"], lists(synthetic_small), synthetic_small["frames"]
    tsn_flow = resolve({"arch": "tsn_r18", "num_clips": 2, "clip_len": 3, "input_size": 32, "resize_short": 40}, "flow")
    clip, label, index = make_dataset(tsn_flow, directory / "flow.txt", root / "flow", test_mode=False)[0]
    assert clip.shape == (6, 2, 32, 32) and clip.dtype == torch.uint8 and (label, index) == (0, 0)
    i3d_rgb = resolve({"arch": "i3d_r18", "num_clips": 1, "clip_len": 4, "frame_interval": 2, "input_size": 32,
                       "resize_short": 40, "test_views": 2, "test_crops": "three"}, "rgb")
    clips, _, _ = make_dataset(i3d_rgb, directory / "rgb.txt", root / "rawframes", test_mode=True, accurate=True)[0]
    assert clips.shape == (6, 3, 4, 32, 32)
    # the segments layout stacks x/y pairs in frame order: channel 3 = flow_y of the second frame of the stack
    video_id = rows[0]["video_id"]
    stacked = FrameDataset(directory / "flow.txt", FrameSource(str(root / "flow"), "flow"),
                           ClipSampler(1, clip_len=2, test_mode=True),
                           EvalTransform(ClipWriter(2, 48, "segments", is_flow=True), resize_short=48))[0][0][0]
    numbers = sample_clips(rows[0]["n_frames"] - 1, 1, clip_len=2, test_mode=True)[0, 0]
    expected_y2 = cv2.imread(str(root / "flow" / video_id / f"flow_y_{numbers[1]:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(stacked[3, 0].numpy(), expected_y2)


def test_training_randomness_is_reproducible_per_epoch(synthetic_small):
    root, directory = synthetic_small["root"], lists(synthetic_small)
    settings = resolve({"arch": "tsn_r18", "num_clips": 3, "input_size": 32, "resize_short": 40, "seed": 5}, "rgb")
    a = make_dataset(settings, directory / "rgb.txt", root / "rawframes", test_mode=False)
    b = make_dataset(settings, directory / "rgb.txt", root / "rawframes", test_mode=False)
    assert torch.equal(a[1][0], b[1][0])
    b.set_epoch(1)
    assert not torch.equal(a[1][0], b[1][0])


def test_collate_joins_clips_without_transposing_in_the_worker(synthetic_small):
    from torch.utils.data import DataLoader, default_collate

    root, directory = synthetic_small["root"], lists(synthetic_small)
    settings = resolve({"arch": "i3d_r18", "num_clips": 1, "clip_len": 4, "input_size": 32, "resize_short": 40}, "rgb")
    dataset = make_dataset(settings, directory / "rgb.txt", root / "rawframes", test_mode=False)
    reference = default_collate([dataset[i] for i in range(4)])
    clips, labels, indices = next(iter(DataLoader(dataset, batch_size=4, num_workers=1, collate_fn=collate_clips)))
    assert torch.equal(clips, reference[0]) and torch.equal(labels, reference[1]) and indices.tolist() == [0, 1, 2, 3]
    assert clips.permute(0, 2, 3, 4, 1).is_contiguous()  # channels-last memory: joined with plain copies
    assert normalize_on_device(clips, "rgb").is_contiguous()


@pytest.mark.parametrize("recipe, mode", [
    ({"arch": "tsn_r18", "num_clips": 3, "randaugment": {"num_ops": 2, "magnitude": 9}}, "rgb"),
    ({"arch": "tsn_r18", "num_clips": 3, "clip_len": 2}, "flow"),
    ({"arch": "i3d_r18", "num_clips": 1, "clip_len": 4}, "rgb"),
])
def test_a_workers_batch_is_written_once_into_shared_memory(synthetic_small, monkeypatch, recipe, mode):
    """In a worker, a batch's clips go straight into one shared buffer that the collate hands on uncopied; the
    batch equals the items made one by one, and a real worker gives the same."""
    from torch.utils.data import DataLoader, default_collate

    from train.data import dataset as dataset_module

    root, directory = synthetic_small["root"], lists(synthetic_small)
    settings = resolve({**recipe, "input_size": 32, "resize_short": 40, "seed": 2}, mode)
    tree, listing = (root / "rawframes", directory / "rgb.txt") if mode == "rgb" else (root / "flow",
                                                                                      directory / "flow.txt")
    dataset = make_dataset(settings, listing, tree, test_mode=False)
    reference = default_collate([dataset[i] for i in (3, 0, 2)])
    monkeypatch.setattr(dataset_module, "get_worker_info", lambda: object())  # as inside a DataLoader worker
    items = dataset.__getitems__([3, 0, 2])
    clips, labels, indices = collate_clips(items)
    assert clips.untyped_storage().data_ptr() == items[0][0].untyped_storage().data_ptr()  # no copy
    assert clips.untyped_storage().is_shared()
    assert torch.equal(clips, reference[0]) and torch.equal(labels, reference[1]) and indices.tolist() == [3, 0, 2]
    monkeypatch.undo()
    loaded = next(iter(DataLoader(dataset, batch_size=3, num_workers=1, collate_fn=collate_clips,
                                  sampler=[3, 0, 2])))
    assert torch.equal(loaded[0], reference[0])


def _shared_file(tensor):
    """The inode of the shared-memory file behind a batch the main process received from a worker."""
    fd, _ = tensor.untyped_storage()._share_fd_cpu_()
    return os.fstat(fd).st_ino


@pytest.mark.parametrize("release", [True, False])
def test_a_worker_writes_a_batchs_memory_again_only_after_its_release(synthetic_small, release):
    """Released batches: the worker cycles through a few shared buffers (no fresh pages per batch) and every batch
    still holds its own clips. Batches never released — held to the end, as a consumer that keeps them — are never
    overwritten: each has its own memory, intact after the loop."""
    from torch.utils.data import DataLoader

    from train.data.batch_memory import BUFFERS_PER_WORKER

    root, directory = synthetic_small["root"], lists(synthetic_small)
    settings = resolve({"arch": "i3d_r18", "num_clips": 1, "clip_len": 4, "input_size": 32, "resize_short": 40}, "rgb")
    dataset = make_dataset(settings, directory / "rgb.txt", root / "rawframes", test_mode=False)
    reference = [dataset[i][0] for i in range(len(dataset))]
    order = [i % len(dataset) for i in range(7 * 3 * 2)]
    files, held, tokens = [], [], []
    for batch in DataLoader(dataset, batch_size=3, num_workers=1, collate_fn=collate_clips, sampler=order,
                            prefetch_factor=2):
        assert isinstance(batch, ClipBatch)
        tokens.append(batch.token)
        files.append(_shared_file(batch[0]))
        assert all(torch.equal(clip, reference[int(index)]) for clip, index in zip(batch[0], batch[2]))
        if release:
            release_batch(batch)
        else:
            held.append(batch)
    if release:
        assert None not in tokens and len(set(files)) <= 4 < len(files)  # prefetch 2 + the one in use (+ in flight)
    else:  # the worker's buffers all out: new memory for each further batch, without a token
        assert len(set(files)) == len(files)
        assert tokens.index(None) == BUFFERS_PER_WORKER and set(tokens[BUFFERS_PER_WORKER:]) == {None}
        assert all(torch.equal(clip, reference[int(index)]) for batch in held for clip, index in zip(batch[0], batch[2]))


@pytest.mark.parametrize("release", [True, False])
def test_evaluation_chunks_reuse_a_workers_memory_only_after_their_release(synthetic_small, release):
    """The evaluation's chunks (ClipChunks: several sizes, parts of videos) from a worker equal the chunks made in one
    process; released ones reuse the worker's memory, held ones stay intact."""
    from torch.utils.data import DataLoader

    from train.data import keep_chunk

    root, directory = synthetic_small["root"], lists(synthetic_small)
    settings = resolve({"arch": "i3d_r18", "num_clips": 1, "clip_len": 2, "input_size": 32, "resize_short": 40,
                        "test_views": 2, "test_crops": "three"}, "rgb")
    dataset = make_dataset(settings, directory / "rgb.txt", root / "rawframes", test_mode=True, accurate=True)
    chunks = ClipChunks(dataset, shard_groups(plan_chunks(len(dataset), 6, 4), 0, 1) * 3)
    reference = [chunks[i] for i in range(len(chunks))]
    assert {len(owners) for _, owners in reference} == {2, 4}
    files, held = [], []
    for index, chunk in enumerate(DataLoader(chunks, batch_size=None, collate_fn=keep_chunk, num_workers=1)):
        assert isinstance(chunk, ClipBatch)
        files.append(_shared_file(chunk[0]))
        assert torch.equal(chunk[0], reference[index][0]) and torch.equal(chunk[1], reference[index][1])
        if release:
            release_batch(chunk)
        else:
            held.append((index, chunk))
    if release:
        assert len(set(files)) <= 6 < len(files)
    else:
        assert len(set(files)) == len(files)
        assert all(torch.equal(chunk[0], reference[index][0]) for index, chunk in held)


def test_a_release_from_another_process_or_a_stale_token_frees_nothing():
    from train.data.batch_memory import BatchMemory, release

    memory = BatchMemory()
    release((("elsewhere", 0), 0, 0, 7))  # a table this process never made: nothing happens
    release((memory.key, 1, 2, 7))
    assert memory.released[1, 2] == 7 and (memory.released != 7).sum() == memory.released.numel() - 1
    release(None)
    batch = ClipBatch((torch.zeros(2), torch.ones(2)), (memory.key, 0, 0, 9))
    unpickled = pickle.loads(pickle.dumps(batch))  # as it crosses from the worker
    assert isinstance(unpickled, ClipBatch) and unpickled.token == batch.token
    release_batch(unpickled)
    assert memory.released[0, 0] == 9 and unpickled.token is None
    release_batch((torch.zeros(1),))  # another collate's batch: nothing to release


def test_chunk_plans_cover_every_clip_once_and_ignore_the_process_count():
    for videos, per_video, batch in ((7, 3, 8), (3, 30, 8), (5, 1, 4), (4, 8, 8)):
        groups = plan_chunks(videos, per_video, batch)
        chunks = [chunk for group in groups for chunk in group]
        assert all(sum(stop - start for _, start, stop in chunk) <= batch for chunk in chunks)
        clips = sorted((video, clip) for chunk in chunks for video, start, stop in chunk for clip in range(start, stop))
        assert clips == [(v, c) for v in range(videos) for c in range(per_video)]
        for group in groups:  # a video never spans two groups
            assert len({v for chunk in group for v, _, _ in chunk} & {v for g in groups if g is not group
                                                                      for chunk in g for v, _, _ in chunk}) == 0
        shards = [shard_groups(groups, rank, 3) for rank in range(3)]
        assert sorted(map(str, sum(shards, []))) == sorted(map(str, chunks))


def test_clip_chunks_return_the_clips_of_the_plan(synthetic_small):
    root, directory = synthetic_small["root"], lists(synthetic_small)
    settings = resolve({"arch": "i3d_r18", "num_clips": 1, "clip_len": 2, "input_size": 32, "resize_short": 40,
                        "test_views": 2, "test_crops": "three"}, "rgb")
    dataset = make_dataset(settings, directory / "rgb.txt", root / "rawframes", test_mode=True, accurate=True)
    assert dataset.clips_per_video == 6
    chunks = ClipChunks(dataset, shard_groups(plan_chunks(len(dataset), 6, 4), 0, 1))
    clips, owners = chunks[1]  # the second chunk: clips 4 and 5 of video 0 (one process: nothing to release)
    assert owners.tolist() == [0, 0] and torch.equal(clips, dataset[0][0][4:6])
    with pytest.raises(ValueError, match="eval_batch"):
        plan_chunks(3, 2, 0)
