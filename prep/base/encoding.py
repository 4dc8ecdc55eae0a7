"""How the videos storage is encoded (prep reencode), as plain facts: light enough for the workflow to import.

The settings follow the sampling of the recipes that read a dataset (:func:`settings_for`); the numbers behind the
choice are measured by ``tests/benchmarks/bench_storage.py --encodings`` (README, "Storage").
"""
from dataclasses import dataclass

from prep.base.errors import UserError

DEFAULT_CRF = 18
# measured on real camera clips at short side 256, decode only, per CPU-second against cv2.imdecode of the JPEG q95
# frames (README, "Storage"): every frame a keyframe, x264's fastdecode tune — TSN 8×1 0.43×, I3D 32×2 0.69× (a
# dense clip skips the frames it steps over) for 0.25× the bytes; keyint 4 + 1 B-frame: 0.29× / 0.60× for 0.15×;
# keyint 16 + 1 B-frame: 0.23× / 0.62× for 0.10×. fastdecode (no CABAC, no deblocking) adds ~7 % bytes and cuts
# decoding by a third to a half.
SPARSE_KEYINT, SPARSE_BFRAMES = 1, 0
DENSE_KEYINT, DENSE_BFRAMES = 16, 1
SPARSE_SPAN = 8  # a uniform sampling whose clips span at most this many frames reads sparsely (TSN/TSM: 1)
DEFAULT_KEYINT, DEFAULT_BFRAMES = SPARSE_KEYINT, SPARSE_BFRAMES  # by hand: what serves every sampling
DEFAULT_FASTDECODE = 1
COMMENT_PREFIX = "actionflow reencode "


@dataclass(frozen=True)
class EncoderSettings:
    """How a video is encoded for the sampling that reads it: a keyframe every ``keyint`` frames (fixed, closed
    groups: reading frame k decodes from the keyframe at or before it), ``bframes`` non-reference B-frames between
    reference frames (no B-pyramid: the decoder skips those a clip steps over), x264 quality ``crf``. Recorded in
    the file (the container's comment tag, :meth:`comment`): a video made with other settings is made again."""

    keyint: int = DEFAULT_KEYINT
    bframes: int = DEFAULT_BFRAMES
    crf: int = DEFAULT_CRF
    fastdecode: int = DEFAULT_FASTDECODE  # 1: x264's --tune fastdecode (no CABAC, no deblocking): cheaper to decode

    def __post_init__(self):
        if self.keyint < 1 or not 0 <= self.bframes <= 16 or not 0 <= self.crf <= 51 or self.fastdecode not in (0, 1):
            raise UserError(f"re-encoding settings out of range: keyint {self.keyint} (≥ 1), bframes {self.bframes} "
                            f"(0-16), crf {self.crf} (0-51), fastdecode {self.fastdecode} (0 or 1)")

    def comment(self):
        return (f"{COMMENT_PREFIX}keyint={self.keyint} bframes={self.bframes} crf={self.crf} "
                f"fastdecode={self.fastdecode}")


def settings_for(samplings, crf=DEFAULT_CRF):
    """The :class:`EncoderSettings` for the recipes that read a dataset: ``samplings`` are their
    ``(kind, num_clips, clip_len, frame_interval)``. Sparse sampling (a few frames per segment, TSN/TSM) wants short
    groups, so a frame costs few decodes: every frame a keyframe; dense clips alone (I3D) read long runs and keep long
    groups (fewer bytes). One file serves every recipe, so the sparsest reader decides. Non-reference B-frames in long
    groups: a clip every 2nd frame skips those it steps over
    (measured with tests/benchmarks/bench_storage.py --encodings; README, "Storage")."""
    sparse = [s for s in samplings if s[0] == "uniform" and s[2] * s[3] <= SPARSE_SPAN]
    if sparse or not samplings:
        return EncoderSettings(keyint=SPARSE_KEYINT, bframes=SPARSE_BFRAMES, crf=crf)
    return EncoderSettings(keyint=DENSE_KEYINT, bframes=DENSE_BFRAMES, crf=crf)


def parse_settings(comment):
    """The :class:`EncoderSettings` a video's comment tag records, or None (not re-encoded by this stage)."""
    fields = dict(part.split("=", 1) for part in comment.split()[2:] if "=" in part) \
        if comment.startswith(COMMENT_PREFIX) else None
    try:
        return EncoderSettings(**{key: int(value) for key, value in fields.items()}) if fields else None
    except (TypeError, ValueError, UserError):
        return None


