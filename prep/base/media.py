"""The tools under every stage: which ffmpeg, how videos are encoded, opened and probed."""
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import ffmpeg

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


def open_video(video_path):
    """A cv2.VideoCapture decoding on one thread (one worker = one core), or None if it cannot be opened.

    OpenCV never sees the file's own name: it opens a symlink with a plain name in a fresh temporary folder
    (OpenCV 4.x segfaults on a name that is not UTF-8, and reads ``%d`` in a name as an image sequence); the link is
    removed as soon as the decoder holds the file open."""
    alias_dir = tempfile.mkdtemp(prefix="actionflow-video.")
    alias = os.path.join(alias_dir, "video" + "".join(c for c in Path(video_path).suffix if c.isalnum() or c == "."))
    try:
        os.symlink(os.path.abspath(video_path), alias)
        capture = cv2.VideoCapture(alias, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        if not capture.isOpened():
            capture.release()
            capture = cv2.VideoCapture(alias)  # another backend, if the build has one
    finally:
        shutil.rmtree(alias_dir, ignore_errors=True)
    if not capture.isOpened():
        capture.release()
        return None
    return capture


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
    """Container facts without decoding: frame count, fps, width, height (zeros when it cannot be opened)."""
    capture = open_video(video_path)
    if capture is None:
        return {"container_frames": 0, "fps": 0.0, "width": 0, "height": 0}
    try:
        return {"container_frames": max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                "fps": float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}
    finally:
        capture.release()
