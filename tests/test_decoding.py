"""One decoder, one answer (issue 23): every path that decodes a source video — ``prep frames``, ``prep flow`` from
videos, ``prep reencode`` (and training from what it writes), the videos storage on a source file, and
``train.predict`` — gets the same frames from a video with a display rotation and from a damaged H.264 stream.

Oracles outside the code under test: the ffmpeg CLI (which rotates as players do, and decodes past a packet it
refuses) for pure rotations and frame counts; a bright corner block for where the displayed top-left lands.
"""
import subprocess

import cv2
import numpy as np
import pytest

from prep.base import media
from prep.base.frame_source import count_frames, open_frames
from prep.flow import run_flow
from prep.frames import run_frames
from prep.reencode import run_reencode
from train.predict import decode_video

WIDTH, HEIGHT, FRAMES = 64, 48, 12


def ffmpeg(*args):
    subprocess.run([media.ffmpeg_executable(), "-v", "error", "-y", *map(str, args)], check=True)


def pattern(k):
    """Frame k as shown: gray, a white block at the top-left, a dark one at the bottom-right, moving a little."""
    image = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
    image[2 + k % 3:14 + k % 3, 2:18] = 255
    image[HEIGHT - 12:, WIDTH - 20:] = 10
    return image


def write_with_matrix(path, matrix):
    """An H.264 mp4 whose display matrix is ``matrix`` (9 ints, FFmpeg's layout; None: none) holding the coded
    frames that, shown through the matrix, look like :func:`pattern` — built by undoing the player's operations."""
    import av

    operations = media.orientation(None if matrix is None else np.array(matrix, np.int32))
    undo = {"transpose": "transpose", "anti_transpose": "anti_transpose", "rotate_clockwise":
            "rotate_counterclockwise", "rotate_counterclockwise": "rotate_clockwise", "hflip": "hflip",
            "vflip": "vflip"}
    inverse = tuple(undo[op] for op in reversed(operations))
    coded = [media.orient(pattern(k), inverse) for k in range(FRAMES)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "10", "bf": "0"})
        stream.height, stream.width = coded[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if matrix is not None:
            stream.set_display_matrix(list(matrix))
        for image in coded:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def fixed(x):
    return int(round(x * 65536))


def rotation_matrix(counterclockwise, hflip=False):
    """FFmpeg's av_display_rotation_set(angle) (then av_display_matrix_flip(hflip)), as ints."""
    radians = np.radians(counterclockwise)
    c, s = np.cos(radians), np.sin(radians)
    m = [fixed(c), fixed(-s), 0, fixed(s), fixed(c), 0, 0, 0, 1 << 30]
    if hflip:
        m = [v * (-1 if i % 3 == 0 else 1) for i, v in enumerate(m)]
    return m


def where_bright(image):
    """(row, column) of the centre of the white block, as fractions of the height and width."""
    gray = image if image.ndim == 2 else image.mean(axis=2)
    rows, cols = np.nonzero(gray > 200)
    return rows.mean() / gray.shape[0], cols.mean() / gray.shape[1]


def cli_frames(path):
    """The frames the ffmpeg CLI shows (autorotation on, every decoded frame, none duplicated): RGB arrays."""
    probe = subprocess.run([media.ffmpeg_executable(), "-v", "error", "-i", str(path), "-vsync", "passthrough",
                            "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    with media.VideoReader(path) as video:
        facts = video.facts()
    size = facts["width"] * facts["height"] * 3
    assert len(probe) % size == 0, "the CLI's frame size differs from the displayed size"
    return [np.frombuffer(probe[i:i + size], np.uint8).reshape(facts["height"], facts["width"], 3)
            for i in range(0, len(probe), size)]


MATRICES = {
    "none": None,
    "rotate_90": rotation_matrix(90),
    "rotate_180": rotation_matrix(180),
    "rotate_270": rotation_matrix(-90),
    "rotate_90_hflip": rotation_matrix(90, hflip=True),
    "hflip": rotation_matrix(0, hflip=True),
    "rotate_180_hflip": rotation_matrix(180, hflip=True),
}


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    root = tmp_path_factory.mktemp("rotated")
    (root / "src").mkdir()
    for name, matrix in MATRICES.items():
        write_with_matrix(root / "src" / f"{name}.mp4", matrix)
    # the ffmpeg CLI's own way of writing one (the legacy `rotate` tag, which it turns into a display matrix)
    ffmpeg("-i", root / "src" / "none.mp4", "-c", "copy", "-metadata:s:v", "rotate=90", root / "tagged.mp4")
    return root


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_the_one_decoder_shows_frames_as_a_player_does(rotated, name):
    with media.VideoReader(rotated / "src" / f"{name}.mp4") as video:
        frames = list(video.arrays("rgb24"))
        facts = video.facts()
    assert len(frames) == FRAMES and (facts["width"], facts["height"]) == (WIDTH, HEIGHT)
    for k, frame in enumerate(frames):
        assert frame.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(frame.astype(int) - pattern(k)).mean() < 4, (name, k)  # lossy coding, the same picture
    if name in ("none", "rotate_90", "rotate_180", "rotate_270"):  # what this ffmpeg CLI also applies
        for ours, cli in zip(frames, cli_frames(rotated / "src" / f"{name}.mp4"), strict=True):
            assert np.abs(ours.astype(int) - cli).max() <= 2


def test_the_cli_rotate_tag_is_a_display_matrix_too(rotated):
    with media.VideoReader(rotated / "tagged.mp4") as video:
        ours = list(video.arrays("rgb24"))
    cli = cli_frames(rotated / "tagged.mp4")
    assert ours[0].shape == (WIDTH, HEIGHT, 3) == cli[0].shape  # turned a quarter
    for a, b in zip(ours, cli, strict=True):
        assert np.abs(a.astype(int) - b).max() <= 2


def test_every_path_gets_the_rotated_frames(rotated, tmp_path):
    """frames, flow from the video, reencode (and the videos storage it feeds), the source file read as the videos
    storage, and predict: the displayed size and the bright block at the displayed top-left, frame for frame."""
    videos = [(name, rotated / "src" / f"{name}.mp4") for name in MATRICES]
    frames = {r["video_id"]: r for r in run_frames(videos, tmp_path / "frames", short_side=None, size=None,
                                                   quality=95, naming="mmaction")}
    reencoded = {r["video_id"]: r for r in run_reencode(videos, tmp_path / "videos")}
    flow = {r["video_id"]: r for r in run_flow([v for v, _ in videos], tmp_path / "none", tmp_path / "flow",
                                               videos=dict(videos), algorithm="farneback", bound=20.0,
                                               quality=95)}
    for name, path in videos:
        assert frames[name]["status"] == "done" and reencoded[name]["status"] == "done", (frames[name], reencoded[name])
        assert (frames[name]["width"], frames[name]["height"]) == (WIDTH, HEIGHT)
        assert (reencoded[name]["out_width"], reencoded[name]["out_height"]) == (WIDTH, HEIGHT)
        assert frames[name]["n_frames"] == reencoded[name]["n_frames"] == FRAMES
        assert flow[name]["status"] == "done" and flow[name]["n_flow"] == FRAMES - 1
        with open_frames(tmp_path / "flow", name, "flow") as stored:
            assert stored.read(1).shape == (HEIGHT, WIDTH, 2)
        predicted = decode_video(path)
        assert predicted.shape == (FRAMES, HEIGHT, WIDTH, 3)
        with open_frames(tmp_path / "frames", name) as jpegs, open_frames(tmp_path / "videos", name) as video, \
                open_frames(rotated / "src", name) as source:
            assert len(jpegs) == len(video) == len(source) == FRAMES
            for k in range(1, FRAMES + 1):
                expected = where_bright(pattern(k - 1))
                for image in (jpegs.read(k), video.read(k), source.read(k), predicted[k - 1]):
                    assert image.shape == (HEIGHT, WIDTH, 3)
                    assert np.allclose(where_bright(image), expected, atol=0.05), (name, k)


# ---------------------------------------------------------------------------------------------------- damage

def damaged_h264(path, tmp_path):
    """A real H.264 mp4 (B-frames, 50 frames) whose 26th packet's NAL length field is destroyed: the decoder
    refuses that packet ("Invalid NAL unit size"); the ffmpeg CLI decodes on past it."""
    import av

    clean = tmp_path / "clean.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-frames:v", 50, "-c:v", "libx264", "-pix_fmt",
           "yuv420p", "-g", 12, "-bf", 2, clean)
    with av.open(str(clean)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(clean.read_bytes())
    position = packets[25][0]
    data[position:position + 4] = b"\x7f\xff\xff\xff"
    path.write_bytes(bytes(data))
    return path


def cli_frame_count(path):
    """Frames the ffmpeg CLI decodes (one framemd5 line each, no duplication)."""
    out = subprocess.run([media.ffmpeg_executable(), "-v", "quiet", "-i", str(path), "-vsync", "passthrough", "-f",
                          "framemd5", "-"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line and not line.startswith("#"))


def test_every_path_decodes_a_damaged_stream_to_the_same_frames(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    video = damaged_h264(source / "broken.mp4", tmp_path)
    expected = cli_frame_count(video)
    assert 40 < expected < 50  # one packet refused, the rest decoded (OpenCV's reader stopped at ~23)
    with media.VideoReader(video) as reader:
        reference = list(reader.arrays("bgr24"))
        assert reader.damage.skipped == 1
    assert len(reference) == expected
    frames, = run_frames([("broken", video)], tmp_path / "frames", short_side=None, size=None, quality=95,
                         naming="mmaction")
    reencoded, = run_reencode([("broken", video)], tmp_path / "videos")
    flow, = run_flow(["broken"], tmp_path / "none", tmp_path / "flow", videos={"broken": video},
                     algorithm="farneback", bound=20.0, quality=95)
    for record in (frames, reencoded):
        assert record["status"] == "done" and record["n_frames"] == expected, record
        assert f"decoded {expected} of 50 frames the container claims" in record["note"], record
        assert "skipped 1 damaged packet the decoder refused, the first after frame" in record["note"], record
    assert flow["status"] == "done" and flow["n_flow"] == expected - 1, flow
    assert "skipped 1 damaged packet" in flow["note"]
    assert len(decode_video(video)) == expected
    assert count_frames(tmp_path / "frames", "broken") == count_frames(tmp_path / "videos", "broken") == expected
    # the frames themselves: the stage's JPEGs are the one decoder's frames, encoded
    with open_frames(tmp_path / "frames", "broken") as jpegs, open_frames(tmp_path / "videos", "broken") as videos:
        for k in (1, 24, 25, 26, 30, expected):
            jpeg = cv2.imencode(".jpg", reference[k - 1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
            assert jpegs.read_bytes(k) == jpeg, k
            assert np.abs(videos.read(k).astype(int) - reference[k - 1][..., ::-1]).mean() < 4, k
