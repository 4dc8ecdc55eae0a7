"""The tools under every stage: which ffmpeg, how videos are encoded, opened, decoded and probed.

One decoder, one answer: every path that decodes a source video — ``prep frames``, ``prep flow`` from videos,
``prep reencode``, training from video files, ``train.predict`` — decodes it here (:class:`VideoReader`, or the frame
source's VideoDecoder calling :func:`decode_packet` and :func:`orient`), so they all get the same frames:

- **rotation**: the stream's display matrix is applied as players apply it (FFmpeg's fftools/ffplay.c
  ``configure_video_filters`` and fftools/ffmpeg_filter.c ``configure_input_video_filter``: a rotation by a
  multiple of 90°, with the flips the matrix holds); frames, sizes and reports are in the displayed orientation.
- **damage**: a packet the decoder refuses is skipped and decoding goes on with the next one, as the ffmpeg CLI and
  players do (OpenCV's reader stopped there, losing the rest of the video); the report's ``note`` says how many
  packets were skipped and after which frame (:meth:`Damage.note`).
"""
import functools
import math
import shutil
import subprocess
import threading
from pathlib import Path

import ffmpeg
import numpy as np

from prep.base import names
from prep.base.errors import UserError


@functools.lru_cache(maxsize=None)
def ffmpeg_executable():
    """The system ffmpeg if there is one, else the static build that the imageio-ffmpeg wheel carries (no root)."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        raise UserError("ffmpeg not found: install it (apt-get install ffmpeg, conda install ffmpeg) "
                        f"or `pip install imageio-ffmpeg` ({error})") from None


VIDEO_EXTENSIONS = ("avi", "mp4", "mkv", "webm", "mov")  # what the frames and flow stages take from a folder

# container -> encoder options; xvid is MPEG-4 part 2 with the XVID fourcc, as UCF101 ships
ENCODERS = {
    ".avi": {"vcodec": "mpeg4", "vtag": "XVID", "qscale:v": 2, "bf": 0},
    ".mp4": {"vcodec": "libx264", "pix_fmt": "yuv420p", "crf": 17, "preset": "veryfast", "movflags": "+faststart"},
}


def encode_video(frames, path, fps=25):
    """Encode RGB uint8 frames (N, H, W, 3) into ``path`` (.avi → xvid, .mp4 → h264), deterministically."""
    suffix = str(path)[str(path).rfind("."):]
    if suffix not in ENCODERS:
        raise ValueError(f"{path}: no encoder for {suffix!r} (known: {sorted(ENCODERS)})")
    num_frames, height, width, _ = frames.shape
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
    stream = ffmpeg.output(stream, str(path), r=fps, threads=1, fflags="+bitexact", **{"flags:v": "+bitexact"},
                           **ENCODERS[suffix])
    try:
        ffmpeg.run(stream, cmd=ffmpeg_executable(), input=frames.tobytes(), quiet=True, overwrite_output=True)
    except ffmpeg.Error as error:
        raise UserError(f"{path}: ffmpeg failed: {error.stderr.decode(errors='replace').strip()[-500:]}") from None


def output_size(width, height, short_side=None, size=None):
    """(width, height) of the written frames: unchanged, fixed ``size``, or short side scaled to ``short_side``."""
    if size:
        return size
    if short_side:
        if width <= height:
            return short_side, max(1, round(height * short_side / width))
        return max(1, round(width * short_side / height)), short_side
    return width, height


def _av():
    try:
        import av
    except ImportError:
        raise UserError("decoding videos needs PyAV: pip install av") from None
    return av


class DecodeError(UserError):
    """A video that cannot be opened or holds no video stream; the message names the file."""


def open_container(path, gpu="cpu"):
    """``(container, file)``: ``path`` opened by PyAV for reading, ``file`` the Python file it reads when the name
    is not UTF-8 (PyAV passes str names on as UTF-8), else None. DecodeError naming the file when it is not a
    readable video. ``gpu`` ``cuda:N``: decoded on GPU N's video engines (NVDEC, PyAV's CUDA hwaccel), the frames
    handed back in system memory."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"{path}: no such video")
    source = handle = None
    try:
        str(path).encode()
        source = str(path)
    except UnicodeEncodeError:
        source = handle = open(path, "rb")
    options = {}
    if gpu != "cpu":
        from av.codec.hwaccel import HWAccel

        options["hwaccel"] = HWAccel("cuda", device=gpu.split(":")[1], allow_software_fallback=False)
    try:
        container = av.open(source, "r", **options)
    except (av.FFmpegError, ValueError) as error:
        if handle is not None:
            handle.close()
        raise DecodeError(f"{path}: not a readable video ({getattr(error, 'strerror', None) or error})") from None
    if not container.streams.video:
        container.close()
        if handle is not None:
            handle.close()
        raise DecodeError(f"{path}: no video stream")
    return container, handle


# ------------------------------------------------------------------------------------------------ the rotation rule

def display_matrix(frame):
    """The 3×3 display matrix (int32, FFmpeg's 16.16 fixed point) a decoded frame carries, or None."""
    for data in frame.side_data:
        if data.type.name == "DISPLAYMATRIX":
            raw = bytes(data)
            if len(raw) >= 36:
                return np.frombuffer(raw[:36], dtype=np.int32)
    return None


def orientation(matrix):
    """The operations (in order, on an H×W[×C] array) that show a frame as a player does, from its display
    matrix: as FFmpeg's players, the angle is fftools' get_rotation (clockwise, rounded to a degree) and 90° / 270°
    become a transpose that keeps or adds the matrix's flip, 180° an hflip and / or vflip by the matrix's signs,
    0° a vflip when the matrix flips vertically. An angle off the right angles (which players interpolate) is taken
    to the nearest right angle: frames stay whole pixels."""
    if matrix is None:
        return ()
    m = [float(v) for v in matrix]
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return ()
    theta = round(math.degrees(math.atan2(m[1] / scale1, m[0] / scale0)))  # -av_display_rotation_get
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    quarter = round(theta / 90) % 4
    if quarter == 1:
        return ("transpose",) if m[3] > 0 else ("rotate_clockwise",)       # transpose=cclock_flip | clock
    if quarter == 3:
        return ("anti_transpose",) if m[3] < 0 else ("rotate_counterclockwise",)  # clock_flip | cclock
    if quarter == 2:
        return tuple(op for op, flips in (("hflip", m[0] < 0), ("vflip", m[4] < 0)) if flips)
    return ("vflip",) if m[4] < 0 else ()


_OPERATIONS = {
    "transpose": lambda a: a.swapaxes(0, 1),
    "anti_transpose": lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    "rotate_clockwise": lambda a: np.rot90(a, -1),
    "rotate_counterclockwise": lambda a: np.rot90(a, 1),
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1],
}


def orient(array, operations):
    """``array`` (H×W or H×W×C) as displayed: :func:`orientation`'s operations applied, contiguous."""
    for operation in operations:
        array = _OPERATIONS[operation](array)
    return np.ascontiguousarray(array) if operations else array


def transposes(operations):
    """True when the operations swap width and height (a 90° or 270° display rotation)."""
    return any(op in ("transpose", "anti_transpose", "rotate_clockwise", "rotate_counterclockwise")
               for op in operations)


# -------------------------------------------------------------------------------------------------- the damage rule

class Damage:
    """What a decode skipped: packets the decoder refused, and after how many good frames the first was."""

    def __init__(self):
        self.skipped, self.first_after, self.first_error = 0, None, ""

    def record(self, frames_so_far, error):
        if not self.skipped:
            self.first_after = frames_so_far
            self.first_error = (getattr(error, "strerror", None) or str(error)).splitlines()[0][:80] \
                if str(error) else type(error).__name__
        self.skipped += 1

    def note(self):
        """The report's words for it ("" when nothing was skipped)."""
        if not self.skipped:
            return ""
        plural = "s" if self.skipped > 1 else ""
        return (f"skipped {self.skipped} damaged packet{plural} the decoder refused, the first after frame "
                f"{self.first_after} ({self.first_error})")


def decode_packet(packet, damage, frames_so_far=0):
    """The frames one packet decodes to; a packet the decoder refuses gives none and is recorded in ``damage`` —
    decoding goes on with the next packet (the one rule for damaged streams)."""
    av = _av()
    try:
        return packet.decode()
    except (av.FFmpegError, ValueError) as error:
        damage.record(frames_so_far, error)
        return []


# ------------------------------------------------------------------------------------------------ sequential reading

class VideoReader:
    """A source video decoded once, in order, on one thread (one worker = one core): facts, then every frame that
    decodes as an oriented array. The same frames whoever reads it (see the module's rules)::

        with VideoReader(path) as video:
            video.facts()          # container_frames, fps, rate, width, height (as displayed)
            for bgr in video.arrays("bgr24"): ...
            video.damage.note()
    """

    def __init__(self, path, threads=1):
        self.path = Path(path)
        self.container, self._file = open_container(self.path)
        self.stream = self.container.streams.video[0]
        self.stream.codec_context.thread_count = threads
        self.damage = Damage()
        self.operations = ()  # from the first frame's display matrix (PyAV shows no stream side data)
        self.decoded = 0
        self._decoding = self._decode()
        self._first = next(self._decoding, None)  # decoded ahead: its display matrix says the orientation
        if self._first is not None:
            self.operations = orientation(display_matrix(self._first))

    def facts(self):
        """``container_frames`` (what the container claims, 0 when it does not say), ``fps``, ``rate`` (a fraction,
        or None), ``width`` and ``height`` as displayed."""
        stream = self.stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        width, height = stream.codec_context.width, stream.codec_context.height
        if transposes(self.operations):
            width, height = height, width
        return {"container_frames": int(stream.frames or 0), "fps": float(rate or 0.0), "rate": rate,
                "width": width, "height": height}

    def _decode(self):
        for packet in self.container.demux(self.stream):
            for frame in decode_packet(packet, self.damage, self.decoded):
                self.decoded += 1
                yield frame

    def frames(self):
        """Every frame that decodes (``av.VideoFrame``, as coded: orient with ``operations``), damaged packets
        skipped; once per reader."""
        if self._first is not None:
            first, self._first = self._first, None
            yield first
            yield from self._decoding

    def arrays(self, format="bgr24", size=None, interpolation="BILINEAR"):
        """Every decodable frame as displayed, an array in ``format`` (bgr24, rgb24, gray: H×W[×3]; yuv420p: the
        three planes, each oriented, flattened and joined as a raw yuv420p frame). ``size`` (width, height, as
        displayed) scales through libswscale first; None keeps the decoded size."""
        for frame in self.frames():
            yield frame_array(frame, self.operations, format, size, interpolation)

    def close(self):
        self.container.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_REFORMATTERS = threading.local()


def reformat(frame, **options):
    """``frame.reformat(**options)`` through this thread's one libswscale context, on one thread. PyAV's
    ``VideoFrame.reformat`` and ``to_ndarray(format=…)`` build a new context per frame, with a thread pool sized to
    the machine: 0.66 ms of CPU for a 602×256 frame to RGB against 0.09 ms here, the same bytes (measured in
    tests/benchmarks/bench_storage.py's setting). A decoding job gets its parallelism from its workers, not here."""
    reformatter = getattr(_REFORMATTERS, "reformatter", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter
        reformatter = _REFORMATTERS.reformatter = VideoReformatter()
    return reformatter.reformat(frame, threads=1, **options)


def frame_array(frame, operations, format="bgr24", size=None, interpolation="BILINEAR"):
    """A decoded frame as displayed (see :meth:`VideoReader.arrays`)."""
    if size is not None:
        width, height = (size[1], size[0]) if transposes(operations) else size
        if (width, height) != (frame.width, frame.height) or format == "yuv420p":
            frame = reformat(frame, width=width, height=height, format=format, interpolation=interpolation)
    if format != "yuv420p":
        return orient(reformat(frame, format=format).to_ndarray(), operations)
    planes = reformat(frame, format="yuv420p") if frame.format.name != "yuv420p" else frame
    height, width = planes.height, planes.width
    data = planes.to_ndarray().reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    parts = [data[:luma].reshape(height, width), data[luma:luma + chroma].reshape(height // 2, width // 2),
             data[luma + chroma:luma + 2 * chroma].reshape(height // 2, width // 2)]
    return np.concatenate([orient(part, operations).reshape(-1) for part in parts])


def unusable_name_record(video_id, record, suffix="", listed=True):
    """The quarantine record of a video whose output ``<id><suffix>`` the file system cannot name (over 255 bytes),
    or, when its id goes into lists (``listed``), whose name they cannot carry (bytes that are not UTF-8, control
    characters); else None. It is reported under a printable form of its id, and nothing is written for it."""
    problem = (names.video_name_problem if listed else names.output_name_problem)(video_id, suffix)
    if problem is None:
        return None
    return dict(record, video_id=names.printable(video_id), status=f"quarantined: {problem}", seconds=0.0)


def unreadable_reason(video_path):
    """Why a video cannot be opened, for the quarantine status: an empty file, no video stream (audio only), …"""
    video_path = Path(video_path)
    if not video_path.is_file():
        return "file not found"
    if video_path.stat().st_size == 0:
        return "empty file"
    try:
        probe_run = subprocess.run([ffmpeg_executable(), "-hide_banner", "-i", str(video_path)],
                                   capture_output=True, text=True, errors="replace", timeout=60)
        streams = [line for line in probe_run.stderr.splitlines() if line.strip().startswith("Stream #")]
    except (UserError, OSError, subprocess.SubprocessError):
        streams = None
    if streams is not None:
        if any(": Audio:" in line for line in streams) and not any(": Video:" in line for line in streams):
            return "no video stream (audio only)"
        if not any(": Video:" in line for line in streams):
            return "no video stream (not a video or unknown format)"
    return "cannot open (no video stream or unknown format)"


def decoded_note(count, container_frames):
    """The report's note when the decoder returned fewer frames than the container claims (kept, never padded)."""
    if container_frames and count < container_frames:
        return f"decoded {count} of {container_frames} frames the container claims"
    return ""


def probe(video_path):
    """Container facts without decoding: frame count, fps, width, height as displayed (zeros when it cannot be
    opened)."""
    try:
        with VideoReader(video_path) as video:
            facts = video.facts()
    except DecodeError:
        return {"container_frames": 0, "fps": 0.0, "width": 0, "height": 0}
    facts.pop("rate")
    return facts
