"""NVDEC: the videos storage decoded on the GPU's video engines (PyAV's FFmpeg, CUDA hwaccel) gives the frames the
CPU decoder gives — the same frame numbers, pixels within the colour conversion's rounding — and its clips/s beside
the CPU's, one process, the same clips. Skipped without CUDA.

    python -m pytest tests/gpu/test_video_decode_gpu.py -v -s
"""
import time

import numpy as np
import pytest
import torch

from prep.base import frame_source
from prep.base.encoding import EncoderSettings
from prep.base.frame_source import choose_video_decoder, gpu_video_decoding, open_frames
from prep.base.media import encode_video
from prep.reencode import run_reencode
from train.presets import make_dataset
from train.recipe import resolve

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
FRAMES = 120


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A numbered source (frame i: level 20 + i on the left half, a moving texture on the right), 456×256, as the
    pipeline re-encodes Kinetics (short side 256, the sparse readers' settings)."""
    root = tmp_path_factory.mktemp("nvdec")
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (256, 912, 3), dtype=np.uint8)
    frames = np.empty((FRAMES, 256, 456, 3), np.uint8)
    for i in range(FRAMES):
        frames[i, :, :228] = 20 + i
        frames[i, :, 228:] = texture[:, 2 * i:2 * i + 228]
    (root / "src" / "Cls").mkdir(parents=True)
    encode_video(frames, root / "src" / "Cls" / "v.mp4")
    out = root / "videos"
    record, = run_reencode([("Cls/v", root / "src" / "Cls" / "v.mp4")], out, settings=EncoderSettings(4, 1))
    assert record["status"] == "done" and record["n_frames"] == FRAMES
    return out


def test_nvdec_is_available_here():
    assert gpu_video_decoding() is None, gpu_video_decoding()
    assert choose_video_decoder("auto") == choose_video_decoder("nvdec") == "cuda:0"


def test_nvdec_gives_the_cpu_frames(videos):
    numbers = np.random.default_rng(1).integers(1, FRAMES + 1, size=40)
    with open_frames(videos, "Cls/v") as cpu, open_frames(videos, "Cls/v", device="cuda:0") as gpu:
        assert gpu.decoder.device == "cuda:0"
        expected, got = dict(cpu.read_many(numbers)), dict(gpu.read_many(numbers))
    assert sorted(got) == sorted(expected)
    for k, image in got.items():
        difference = np.abs(image.astype(np.int16) - expected[k])
        assert difference.mean() <= 1.0 and difference.max() <= 8, (k, difference.mean(), difference.max())
        assert abs(float(image[:, :228].mean()) - (20 + k - 1)) < 1.5  # frame k is source frame k


def test_nvdec_clips_per_second_beside_the_cpu(videos):
    items = [("Cls/v", FRAMES, 0)] * 48
    rates = {}
    for name, sampling in {"TSN 8×1": dict(arch="tsn_r50", num_clips=8, clip_len=1),
                           "I3D 32×2": dict(arch="i3d_r50", num_clips=1, clip_len=32, frame_interval=2)}.items():
        settings = resolve(sampling, "rgb")
        for decoder in ("cpu", "cuda:0"):
            frame_source.decoder_cache().clear()
            dataset = make_dataset(settings, items, videos, test_mode=False, video_decoder=decoder)
            dataset[0]  # opened once
            started = time.perf_counter()
            for item in range(1, len(items)):
                dataset[item]
            rates[(name, decoder)] = (len(items) - 1) / (time.perf_counter() - started)
        print(f"\n{name}: cpu {rates[(name, 'cpu')]:.1f} clips/s, nvdec {rates[(name, 'cuda:0')]:.1f} clips/s "
              f"(one process, 456×256, keyint 4, 1 B-frame)")
        assert rates[(name, "cuda:0")] > 0
