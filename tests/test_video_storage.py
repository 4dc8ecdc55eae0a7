"""The videos storage: re-encoding (prep reencode), reading frame k from the re-encoded video (frame source), the
three storages agreeing, kill -9 reruns, quarantine, the decoder's traps, and the pipeline planning per storage.

Tolerance (stated once, used below): frame k of the videos storage is "the same image" as img_k of the frames
storage when, against the source's decoded frame k, its mean absolute error is at most 1.25× the JPEG's (+0.5 level),
and against img_k itself the mean absolute error is ≤ 5 levels and the PSNR ≥ 30 dB. On the synthetic videos (random
textures, the hardest case for both codecs) the JPEG q95 frames are off the source by ~2.0 levels, the re-encoded
video (crf 18) by ~1.8, and the two differ by 2.3–3.9 levels (PSNR ≥ 32 dB).
"""
import os
import pickle
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from prep.base.encoding import EncoderSettings, parse_settings, settings_for
from prep.base.frame_source import FrameError, VideoDecoder, count_frames, frame_videos, open_frames
from prep.frames import run_frames
from prep.base.media import ffmpeg_executable
from prep.base.trees import TREE_RECORD, read_tree
from prep.reencode import even_size, run_reencode
from tests.conftest import REPO, TINY, decoded_frames, run_prep, snakemake
from train.presets import make_dataset
from train.recipe import resolve

# a TSN-like recipe: 3 segments of 2 frames, small crops, flips on
SETTINGS = resolve({"arch": "tsn_r18", "num_clips": 3, "clip_len": 2, "input_size": 40, "resize_short": 48,
                    "flip": True, "seed": 7}, "rgb")

MAX_MEAN_ERROR, MIN_PSNR, JPEG_FACTOR = 5.0, 30.0, 1.25


def ffmpeg(*args):
    subprocess.run([ffmpeg_executable(), "-v", "error", "-y", *map(str, args)], check=True)


def psnr(a, b):
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def mean_error(a, b):
    return float(np.abs(a.astype(np.float64) - b).mean())


@pytest.fixture(scope="module")
def storages(synthetic_small, tmp_path_factory):
    """The session's synthetic videos in all three storages: rawframes (from conftest), packs and re-encoded."""
    root = tmp_path_factory.mktemp("storages")
    small = synthetic_small["root"]
    index = synthetic_small["index"]
    videos = [(v, small / "raw" / "videos" / p) for v, p in zip(index["video_id"], index["video_path"])]
    run_frames(videos, root / "packs", quality=95, naming="mmaction", pack=True)
    records = run_reencode(videos, root / "videos", report=root / "reencode.csv")
    return {"frames": small / "rawframes", "packs": root / "packs", "videos": root / "videos", "sources": videos,
            "records": records, "report": root / "reencode.csv", "frames_records": synthetic_small["frames"]}


def test_reencoded_videos_keep_every_decoded_frame_and_say_so(storages):
    report = pd.read_csv(storages["report"], keep_default_na=False)
    frames_counts = {r["video_id"]: r["n_frames"] for r in storages["frames_records"]}
    assert set(report["status"]) == {"done"} and len(report) == len(storages["sources"])
    for (video_id, source), row in zip(storages["sources"], report.to_dict("records")):
        assert row["video_id"] == video_id
        decoded = len(decoded_frames(source))
        assert row["n_frames"] == decoded == frames_counts[video_id]  # as the frames storage counts them
        path = storages["videos"] / f"{video_id}.mp4"
        assert row["bytes"] == path.stat().st_size
        with open_frames(storages["videos"], video_id) as video:  # detected: root/video_id.mp4
            assert video.storage == "videos" and len(video) == decoded
        assert count_frames(storages["videos"], video_id) == decoded
        facts = VideoDecoder(path).info()
        assert (facts["width"], facts["height"]) == (48, 48)  # no resize asked; 48×48 is decord 0.6's failing size
        assert facts["fps"] == row["fps"] == 25.0
    assert frame_videos(storages["videos"]) == sorted(v for v, _ in storages["sources"])


def test_frame_k_is_img_k_within_the_stated_tolerance(storages):
    for video_id, source in storages["sources"]:
        reference = decoded_frames(source)
        with open_frames(storages["frames"], video_id) as jpeg, open_frames(storages["videos"], video_id) as video:
            for k in range(len(jpeg), 0, -1):  # backwards: every read seeks
                truth = cv2.cvtColor(reference[k - 1], cv2.COLOR_BGR2RGB)
                img, frame = jpeg.read(k), video.read(k)
                assert frame.shape == img.shape and frame.dtype == np.uint8
                assert mean_error(frame, truth) <= JPEG_FACTOR * mean_error(img, truth) + 0.5, (video_id, k)
                assert mean_error(frame, img) <= MAX_MEAN_ERROR and psnr(frame, img) >= MIN_PSNR, (video_id, k)
            assert video.read(2, reduce=2).shape == (24, 24, 3)
            with pytest.raises(FrameError, match="past the frames that decode"):
                video.read(len(jpeg) + 1)
            with pytest.raises(FrameError):
                video.read_bytes(1)


def test_the_three_storages_sample_the_same_indices_and_pixels(storages):
    items = [(r["video_id"], r["n_frames"], 0) for r in storages["frames_records"]]
    for test_mode in (False, True):
        datasets = {name: make_dataset(SETTINGS, items, storages[name], test_mode)
                    for name in ("frames", "packs", "videos")}
        for item, (video_id, total, _) in enumerate(items):
            numbers = datasets["frames"].sampler(total, np.random.default_rng([7, 0, item]))
            assert all(np.array_equal(d.sampler(total, np.random.default_rng([7, 0, item])), numbers)
                       for d in datasets.values())
            loaded = {}
            for name, dataset in datasets.items():
                with dataset.source.open(video_id) as frames:
                    loaded[name] = np.stack([frames.read(int(k)) for k in numbers.reshape(-1)])
            assert np.array_equal(loaded["frames"], loaded["packs"])  # the same JPEG bytes
            assert mean_error(loaded["videos"], loaded["frames"]) <= MAX_MEAN_ERROR
            clips = {name: dataset[item][0].numpy() for name, dataset in datasets.items()}  # same crops and flips
            assert np.array_equal(clips["frames"], clips["packs"]) and clips["videos"].shape == clips["frames"].shape
            assert mean_error(clips["videos"], clips["frames"]) <= MAX_MEAN_ERROR
            assert psnr(clips["videos"], clips["frames"]) >= MIN_PSNR


def test_a_video_source_works_in_dataloader_workers(storages):
    """Pickled into workers without an open handle; each worker opens its own and reads the same frames."""
    import torch

    items = [(r["video_id"], r["n_frames"], 0) for r in storages["frames_records"]]
    dataset = make_dataset(SETTINGS, items, storages["videos"], test_mode=True)
    expected = torch.stack([dataset[i][0] for i in range(len(items))])
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=1,
                                         multiprocessing_context="spawn")  # spawn: the dataset goes pickled
    assert torch.equal(torch.cat([batch[0] for batch in loader]), expected)
    video_id = items[0][0]
    frames = open_frames(storages["videos"], video_id)
    first = frames.read(3)
    copy = pickle.loads(pickle.dumps(frames))  # after a read: the handle stays behind
    assert np.array_equal(copy.read(3), first)


def test_random_access_equals_sequential_decoding_with_b_frames(tmp_path):
    """A source with B-frames, a 12-frame GOP and a start offset: reads in any order give the sequential frames."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30000/1001", "-frames:v", 75, "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-g", 12, "-bf", 3, "-output_ts_offset", 0.5, tmp_path / "b.mp4")
    sequential = [f.to_ndarray(format="rgb24") for f in VideoDecoder(tmp_path / "b.mp4").frames()]
    assert len(sequential) == 75
    with open_frames(tmp_path, "b") as video:
        assert len(video) == 75
        order = np.random.default_rng(0).permutation(75) + 1
        for k in list(order) + [1, 2, 3, 40, 41, 75, 74]:
            assert np.array_equal(video.read(int(k)), sequential[k - 1]), k


def test_a_container_that_claims_more_frames_is_bounded(tmp_path):
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", 60, "-c:v", "libx264", "-pix_fmt",
           "yuv420p", "-g", 8, "-bf", 0, "-movflags", "+faststart", tmp_path / "full.mp4")
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:int(len(data) * 0.5)])  # the index says 60, the data ends early
    decoded = len(decoded_frames(tmp_path / "cut.mp4"))
    assert 2 <= decoded < 60
    started = time.time()
    with open_frames(tmp_path, "cut") as video:
        assert len(video) == 60  # what the container claims
        assert video.read(decoded).shape == (48, 64, 3)
        for k in (decoded + 1, 60):
            with pytest.raises(FrameError, match="past the frames that decode"):
                video.read(k)
    assert time.time() - started < 10
    (tmp_path / "src").mkdir()
    os.rename(tmp_path / "cut.mp4", tmp_path / "src" / "cut.mp4")
    record, = run_reencode([("cut", tmp_path / "src" / "cut.mp4")], tmp_path / "out")
    assert (record["status"], record["n_frames"], record["container_frames"]) == ("done", decoded, 60)
    assert record["note"].startswith(f"decoded {decoded} of 60 frames the container claims")  # + a cut packet
    assert count_frames(tmp_path / "out", "cut") == decoded


def test_odd_sizes_short_side_and_unusual_file_names(tmp_path):
    name = b"odd &();!'x\xff"  # not UTF-8, with the characters HMDB51 names hold
    folder = tmp_path / "src" / "Cls"
    folder.mkdir(parents=True)
    source = os.path.join(os.fsencode(folder), name + b".avi")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=75x33:rate=25", "-frames:v", 21, "-c:v", "mpeg4",
           os.fsdecode(source))
    video_id = "Cls/" + os.fsdecode(name)
    record, = run_reencode([(video_id, os.fsdecode(source))], tmp_path / "out", short_side=32)
    assert record["status"] == "done" and record["n_frames"] == 21
    assert (record["width"], record["height"], record["out_width"], record["out_height"]) == (75, 33, 72, 32)
    record, = run_reencode([(video_id, os.fsdecode(source))], tmp_path / "sized", size=(41, 23))
    assert (record["out_width"], record["out_height"]) == (42, 24)
    with open_frames(tmp_path / "out", video_id) as video:
        assert len(video) == 21 and video.read(21).shape == (32, 72, 3)
    assert even_size(1280, 720, 256) == (456, 256) and even_size(33, 75) == (34, 76)


def test_videos_that_cannot_be_reencoded_are_quarantined_and_the_rest_goes_on(tmp_path):
    folder = tmp_path / "src" / "Cls"
    folder.mkdir(parents=True)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", 10, "-c:v", "libx264", "-pix_fmt",
           "yuv420p", folder / "good.mp4")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", folder / "sound.mp4")
    (folder / "empty.avi").write_bytes(b"")
    (folder / "junk.avi").write_bytes(b"RIFF not really a video" * 20)
    result = run_prep("reencode", tmp_path / "src", tmp_path / "out", "--report", tmp_path / "r.csv")
    assert "1 done" in result.stdout and "3 quarantined" in result.stdout
    report = pd.read_csv(tmp_path / "r.csv", keep_default_na=False).set_index("video_id")["status"].to_dict()
    assert report["Cls/good"] == "done"
    assert report["Cls/empty"] == "quarantined: empty file"
    assert report["Cls/sound"].startswith("quarantined:") and "no video stream" in report["Cls/sound"]
    assert report["Cls/junk"].startswith("quarantined:") and "not a readable video" in report["Cls/junk"]
    assert sorted(p.name for p in (tmp_path / "out" / "Cls").iterdir()) == ["good.mp4"]  # no temporaries left


def test_kill_minus_nine_during_reencoding_then_rerun_is_byte_identical(tmp_path):
    folder = tmp_path / "src" / "Cls"
    folder.mkdir(parents=True)
    for k in range(4):
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=25,hue=h={30 * k}", "-frames:v", 90, "-c:v",
               "mpeg4", "-q:v", 3, folder / f"v{k}.avi")
    clean = tmp_path / "clean"
    run_prep("reencode", tmp_path / "src", clean, "--short-side", 64)
    killed_out = tmp_path / "killed"
    kills = 0
    for threshold in (1, 3):  # kill once the tree holds this many entries, temporaries included
        process = subprocess.Popen([sys.executable, "-m", "prep", "reencode", tmp_path / "src", killed_out,
                                    "--short-side", "64"], cwd=REPO, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        while process.poll() is None:
            if (killed_out / "Cls").is_dir() and len(os.listdir(killed_out / "Cls")) >= threshold:
                os.killpg(process.pid, signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.002)
        process.wait()
    assert kills >= 1
    run_prep("reencode", tmp_path / "src", killed_out, "--short-side", 64)
    files = {p.name: p.read_bytes() for p in (clean / "Cls").iterdir()}
    assert len(files) == 4 and not [n for n in files if n.startswith(".")]
    assert {p.name: p.read_bytes() for p in (killed_out / "Cls").iterdir()} == files


def test_keyframes_every_interval_and_b_frames_that_nothing_references(storages):
    import av

    path = next(iter(sorted(storages["videos"].rglob("*.mp4"))))
    settings = EncoderSettings()
    with av.open(str(path)) as container:
        assert parse_settings(container.metadata["comment"]) == settings  # the file says how it was made
        frames = list(container.decode(video=0))
    keys = [i for i, frame in enumerate(frames) if frame.key_frame]
    assert keys == list(range(0, len(frames), settings.keyint))
    types = [int(frame.pict_type) for frame in frames]  # AV_PICTURE_TYPE_I 1, _P 2, _B 3
    assert (3 in types) == (settings.bframes > 0) and set(types) <= {1, 2, 3}
    decoder = VideoDecoder(path)
    index = decoder._packet_index()
    disposable = {index["positions"][n] for n in range(len(index["packets"])) if decoder._disposable(index, n)}
    assert disposable == {i for i, t in enumerate(types) if t == 3}  # every B-frame may be skipped, nothing else


LEVELS = 70  # frames of the numbered source: frame i is a flat grey of level 20 + 3·i


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """A source whose frame i is a flat grey 20 + 3·i (a decoded frame names its number), as frames and as videos
    re-encoded five ways (keyframe interval, B-frames, fastdecode)."""
    root = tmp_path_factory.mktemp("numbered")
    frames = np.repeat((20 + 3 * np.arange(LEVELS, dtype=np.uint8))[:, None, None, None], 3, axis=3)
    frames = np.ascontiguousarray(np.broadcast_to(frames, (LEVELS, 40, 56, 3)))
    (root / "src" / "Cls").mkdir(parents=True)
    from prep.base.media import encode_video

    encode_video(frames, root / "src" / "Cls" / "n.mp4")
    videos = [("Cls/n", root / "src" / "Cls" / "n.mp4")]
    record, = run_frames(videos, root / "frames", quality=95, naming="mmaction")
    encodings = {f"k{k}b{b}f{f}": EncoderSettings(keyint=k, bframes=b, fastdecode=f)
                 for k, b, f in ((16, 0, 0), (4, 1, 1), (8, 3, 0), (1, 0, 1), (16, 1, 1))}
    for name, settings in encodings.items():
        run_reencode(videos, root / name, settings=settings)
    return {"root": root, "n_frames": record["n_frames"], "encodings": encodings}


def frame_numbers(clip):
    """The source frame number (1-based) of each frame of a uint8 clip (C', T, H, W) or clips (n, C', T, H, W)."""
    levels = clip.numpy().astype(np.float64).mean(axis=(-2, -1))  # (…, C', T)
    return np.rint((levels - 20) / 3).astype(int) + 1


@pytest.mark.parametrize("recipe", [
    {"arch": "tsn_r18", "num_clips": 8, "clip_len": 1},
    {"arch": "tsn_r18", "num_clips": 3, "clip_len": 2, "frame_interval": 3},
    {"arch": "i3d_r18", "num_clips": 1, "clip_len": 32, "frame_interval": 2},
    {"arch": "i3d_r18", "num_clips": 4, "clip_len": 8, "sampling": "dense", "test_views": 2},
])
def test_every_clip_from_videos_holds_the_frame_numbers_of_the_frames_storage(numbered, recipe):
    assert numbered["n_frames"] == LEVELS
    settings = resolve({**recipe, "input_size": 24, "resize_short": 32, "seed": 3}, "rgb")
    items = [("Cls/n", LEVELS, 0)] * 12
    for test_mode in (False, True):
        frames = make_dataset(settings, items, numbered["root"] / "frames", test_mode, accurate=True)
        expected = [frame_numbers(frames[i][0]) for i in range(len(items))]
        for item in range(len(items)):  # the numbers the sampler drew, as the frames storage gives them
            numbers = frames.sampler(LEVELS, np.random.default_rng([3, 0, item]))
            assert np.array_equal(np.sort(np.unique(expected[item])), np.unique(numbers)), item
        for name in numbered["encodings"]:
            videos = make_dataset(settings, items, numbered["root"] / name, test_mode, accurate=True)
            for item in range(len(items)):
                assert np.array_equal(frame_numbers(videos[item][0]), expected[item]), (name, test_mode, item)


def test_planned_reads_decode_exactly_the_sequential_frames(tmp_path):
    """Any set of frames, read in one planned pass, in any order, twice over one cached decoder, or from two
    readers of the same file at once, equals sequential decoding of the same file."""
    (tmp_path / "Cls").mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-frames:v", 90, "-c:v", "libx264", "-pix_fmt",
           "yuv420p", tmp_path / "Cls" / "t.mp4")
    rng = np.random.default_rng(0)
    for settings in (EncoderSettings(keyint=8, bframes=3), EncoderSettings(keyint=4, bframes=1),
                     EncoderSettings(keyint=16, bframes=0)):
        out = tmp_path / f"k{settings.keyint}b{settings.bframes}"
        run_reencode([("Cls/t", tmp_path / "Cls" / "t.mp4")], out, settings=settings)
        sequential = [f.to_ndarray(format="rgb24") for f in VideoDecoder(out / "Cls" / "t.mp4").frames()]
        assert len(sequential) == 90
        with open_frames(out, "Cls/t") as one, open_frames(out, "Cls/t") as two:
            for _ in range(12):
                numbers = rng.integers(1, 91, size=int(rng.integers(1, 20)))
                got = dict(one.read_many(numbers))
                assert sorted(got) == sorted(set(numbers.tolist()))
                assert all(np.array_equal(image, sequential[k - 1]) for k, image in got.items())
                k = int(rng.integers(1, 91))
                assert np.array_equal(two.read(k), sequential[k - 1])  # the same decoder, moved elsewhere
            pairs = zip(one.read_many([5, 30, 60]), two.read_many([6, 31, 61]))  # interleaved
            for (a, image_a), (b, image_b) in pairs:
                assert np.array_equal(image_a, sequential[a - 1]) and np.array_equal(image_b, sequential[b - 1])
            with pytest.raises(FrameError, match="past the frames that decode"):
                list(one.read_many([3, 91]))


def test_decoders_stay_open_per_process_bounded_and_closed_on_eviction(tmp_path, monkeypatch):
    from prep.base import frame_source

    monkeypatch.setattr(frame_source, "DECODER_CACHE", 2)
    frame_source.decoder_cache().clear()
    (tmp_path / "src").mkdir()
    for k in range(3):
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=25", "-frames:v", 5 + k, "-c:v", "libx264",
               "-pix_fmt", "yuv420p", tmp_path / "src" / f"v{k}.mp4")
    run_reencode([(f"v{k}", tmp_path / "src" / f"v{k}.mp4") for k in range(3)], tmp_path / "out")
    with open_frames(tmp_path / "out", "v0") as frames:
        frames.read(2)
        first = frames.decoder
    with open_frames(tmp_path / "out", "v0") as frames:
        assert frames.decoder is first and first._container is not None  # kept open across clips
    for k in (1, 2):
        with open_frames(tmp_path / "out", f"v{k}") as frames:
            frames.read(1)
    assert len(frame_source.decoder_cache()) == 2 and first._container is None  # the least recent, closed
    with open_frames(tmp_path / "out", "v2") as frames:
        kept = frames.decoder
    os.replace(tmp_path / "out" / "v0.mp4", tmp_path / "out" / "v2.mp4")  # another file under the same name
    with open_frames(tmp_path / "out", "v2") as frames:
        assert frames.decoder is not kept and len(frames) == 5
    assert pickle.loads(pickle.dumps(kept))._container is None  # never pickled open


def test_other_encoder_settings_reencode_and_the_same_skip(tmp_path):
    (tmp_path / "src").mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", 40, "-c:v", "libx264", "-pix_fmt",
           "yuv420p", tmp_path / "src" / "v.mp4")
    videos = [("v", tmp_path / "src" / "v.mp4")]
    first, = run_reencode(videos, tmp_path / "out", settings=EncoderSettings(keyint=16, bframes=0))
    again, = run_reencode(videos, tmp_path / "out", settings=EncoderSettings(keyint=16, bframes=0))
    assert (first["status"], again["status"]) == ("done", "skipped")
    changed, = run_reencode(videos, tmp_path / "out", settings=EncoderSettings(keyint=4, bframes=1))
    assert changed["status"] == "done" and changed["n_frames"] == 40
    assert parse_settings(VideoDecoder(tmp_path / "out" / "v.mp4").info()["comment"]) == EncoderSettings(4, 1)
    tuned, = run_reencode(videos, tmp_path / "out", settings=EncoderSettings(keyint=4, bframes=1, fastdecode=0))
    assert tuned["status"] == "done"
    resized, = run_reencode(videos, tmp_path / "out", short_side=32, settings=EncoderSettings(keyint=4, bframes=1))
    assert resized["status"] == "done" and (resized["out_width"], resized["out_height"]) == (42, 32)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [TREE_RECORD, "v.mp4"]  # no stray temporaries
    assert read_tree(tmp_path / "out")["rgb"]["frame_size"] == {"short_side": 32, "size": None}  # recorded anew


def test_settings_follow_the_recipes_that_read_the_dataset():
    tsn, i3d = ("uniform", 8, 1, 1), ("uniform", 1, 32, 2)
    dense = ("dense", 4, 8, 1)
    assert settings_for([tsn, i3d]) == settings_for([tsn]) == settings_for([])  # the sparsest reader decides
    assert settings_for([i3d]) == settings_for([dense, i3d])
    assert settings_for([i3d]).keyint > settings_for([tsn]).keyint
    assert settings_for([tsn], crf=23).crf == 23


def dry_run_jobs(workdir, dataset, target, **overrides):
    """{rule: (jobs, threads per job)} of a dry run with a dataset's raw tree and index standing in place."""
    data = workdir / "data" / dataset
    (data / "raw").mkdir(parents=True)
    (data / "index.parquet").write_bytes(b"")
    config = yaml.safe_load((REPO / "config.yaml").read_text())  # the defaults: shards and workers per dataset
    config.update(datasets=[dataset], **overrides)
    path = workdir / "dry_run.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, target, "-n", "-p", "--cores", "64", configfile=path)
    jobs = {}
    rule = None
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("threads:") and rule:
            jobs.setdefault(rule, []).append(int(line.split()[1]))
        elif not line:
            rule = None
    return {rule: (len(threads), max(threads)) for rule, threads in jobs.items()}, result.stdout


@pytest.mark.parametrize("dataset, storage, rgb_rule, rgb_jobs, flow_jobs", [
    ("ucf101", "frames", "frames", (16, 4), (64, 8)),
    ("kinetics400", "videos", "reencode", (256, 4), (1024, 8)),
])
def test_each_dataset_plans_its_storage_and_fills_64_cores(tmp_path, dataset, storage, rgb_rule, rgb_jobs,
                                                           flow_jobs):
    jobs, stdout = dry_run_jobs(tmp_path, dataset, f"data/{dataset}/check.txt")
    assert jobs[rgb_rule] == rgb_jobs and jobs["flow"] == flow_jobs, jobs
    other = "frames" if rgb_rule == "reencode" else "reencode"
    assert other not in jobs  # only what the chosen storage needs
    assert jobs["flow"][0] * jobs["flow"][1] >= 64 and jobs[rgb_rule][0] * jobs[rgb_rule][1] >= 64
    assert f"--frames data/{dataset}/{'videos' if storage == 'videos' else 'rawframes'}" in stdout
    assert ("--pack" in stdout.split("prep flow", 1)[1].split("\n", 1)[0]) == (storage == "videos")
    if storage == "videos":  # at the frame size the recipes assume (kinetics400 FACTS.frame_size)
        expected = settings_for([("uniform", 8, 1, 1), ("uniform", 1, 32, 2)])  # config.yaml: tsn, tsm and i3d
        assert (f"--short-side 256 --keyint {expected.keyint} --bframes {expected.bframes} "
                f"--fastdecode {expected.fastdecode} --crf 18"
                in stdout.split("prep reencode", 1)[1].split("\n", 1)[0])


def test_storage_switches_per_dataset(tmp_path):
    jobs, stdout = dry_run_jobs(tmp_path, "ucf101", "data/ucf101/check.txt", storage={"ucf101": "videos"},
                                reencode={"shards": 4, "workers": 2})
    assert jobs["reencode"] == (4, 2) and "frames" not in jobs and "--short-side" not in stdout


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["videos", "packs"])
def test_synthetic_signature_holds_with_each_storage(tmp_path, storage):
    """The tiny configuration end to end (tests/test_end_to_end.py) with the rgb frames stored as `storage`."""
    import json

    config = yaml.safe_load(TINY.read_text())
    config["storage"] = {"synthetic": storage}
    path = tmp_path / f"{storage}.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--cores", "2", "all", configfile=path)
    data = tmp_path / "data" / "synthetic"
    if storage == "videos":
        assert not (data / "rawframes").exists() and len(list((data / "videos").rglob("*.mp4"))) == 80
    else:
        assert not [p for p in (data / "rawframes").rglob("*.jpg")] and len(list(data.rglob("*.pack"))) == 160
    assert not [p for p in (data / "flow").rglob("*.jpg")]  # flow in packs for both
    top1 = {(m, mode): json.loads((tmp_path / "results" / f"{m}_synthetic_{mode}.json").read_text())["top1"]
            for m in ("tsn", "tsm", "i3d") for mode in ("rgb", "flow")}
    for model in ("tsn", "tsm", "i3d"):
        assert top1[(model, "flow")] >= 0.8, (model, top1)
    assert top1[("tsm", "rgb")] >= 0.8 and top1[("i3d", "rgb")] >= 0.8, top1
    assert top1[("tsn", "rgb")] <= 0.6, top1


def test_an_unknown_storage_stops_with_the_key_named(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["storage"] = {"synthetic": "tapes"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=path, check=False)
    assert result.returncode != 0 and "tapes" in result.stdout + result.stderr


def test_reencode_usage_errors_are_one_line(tmp_path):
    (tmp_path / "src").mkdir()
    for args, words in ((["--size", "64x48", "--short-side", "32"], "exclude each other"),
                        ([], "directory of their own")):
        out = tmp_path / "src" if not args else tmp_path / "out"
        result = run_prep("reencode", tmp_path / "src", out, *args, check=False)
        assert result.returncode == 2 and result.stderr.startswith("error: ") and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = run_prep("reencode", tmp_path / "absent", tmp_path / "out", check=False)
    assert result.returncode == 2 and "absent" in result.stderr and "Traceback" not in result.stderr


def test_the_video_decoder_is_chosen_per_job():
    from prep.base.frame_source import choose_video_decoder, gpu_video_decoding

    assert choose_video_decoder("cpu") == "cpu"
    with pytest.raises(FrameError, match="video decoder must be one of cpu, nvdec, auto"):
        choose_video_decoder("gpu")
    problem = gpu_video_decoding()
    if problem:  # this machine: the CPU decoder, and nvdec names why it cannot be had
        assert choose_video_decoder("auto") == "cpu"
        with pytest.raises(FrameError, match="video decoder nvdec: "):
            choose_video_decoder("nvdec")
    else:
        assert choose_video_decoder("auto", gpu=1) == "cuda:1"
