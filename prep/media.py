"""The tools under every stage: which ffmpeg, how videos are encoded and probed."""
import functools
import shutil

import ffmpeg

from prep import UserError


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
