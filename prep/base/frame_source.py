"""The frame source: one home for how frames are named, counted and read — by prep and by train alike.

    from prep.base.frame_source import open_frames, count_frames
    with open_frames("data/ucf101/rawframes", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01") as frames:
        len(frames)                 # frames on disk
        frames.read(1)              # H×W×3 uint8 RGB; reduce=2|4|8 decodes at 1/2, 1/4, 1/8 size
    with open_frames("data/ucf101/flow", video_id, "flow") as flow:
        flow.read(1)                # H×W×2 uint8 (x, y), the quantized flow JPEGs as stored
        flow.read_bytes(1, "x")     # the stored JPEG bytes

Storages (:data:`STORAGES`, detected unless given): ``frames`` — ``root/video_id/`` holding one JPEG per frame;
``packs`` — ``root/video_id.pack`` (:mod:`prep.base.packed`) holding the same JPEGs under the same names; ``videos`` —
``root/video_id.mp4``, rgb only, re-encoded for random access by ``prep reencode`` (:class:`VideoFileFrames`).

Namings (:data:`NAMINGS`, the only table of frame names in the project; indices 1-based, ``{:05d}``):

==================== ==================== ========================================== ===========================
naming               rgb                  flow (x, y)                                flow frames for N frames
==================== ==================== ========================================== ===========================
mmaction             img_00001.jpg        flow_x_00001.jpg, flow_y_00001.jpg         N−1: flow k = frame k → k+1
mmaction_k400_flow   img_00001.jpg        x_00001.jpg, y_00001.jpg                   N−1: flow k = frame k → k+1
3dresnets            image_00001.jpg      image_00001x.jpg, image_00001y.jpg         N: flow 1 = frame 1 → 1 (zero),
                                                                                     flow k = frame k−1 → k
==================== ==================== ========================================== ===========================

Counting never lists a directory when a marker says the count: ``n_frames`` (rgb; 3D-ResNets' file, the largest
image index) and ``.flow_done`` (flow, written last by ``prep flow``); without one, a video's folder is listed once
per open and the count is the contiguous run 1..N.
"""
import bisect
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prep.base import media
from prep.base.errors import UserError
from prep.base.names import safe_relative
from prep.base.packed import PACK_SUFFIX, PackError, open_packed

MODALITIES = ("rgb", "flow")
COMPONENTS = ("x", "y")
FRAMES_MARKER = "n_frames"
FLOW_MARKER = ".flow_done"
REDUCE_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                8: cv2.IMREAD_REDUCED_COLOR_8}
REDUCE_RGB = {reduce: (flag & ~cv2.IMREAD_COLOR) | cv2.IMREAD_COLOR_RGB for reduce, flag in REDUCE_COLOR.items()}
REDUCE_GRAY = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
               8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


class FrameError(UserError):
    """A video's frames are absent, incomplete, misnumbered or undecodable; the message names the file."""


@dataclass(frozen=True)
class Naming:
    """File names of one convention: templates with one ``{:05d}`` (1-based index) and the flow count rule."""

    rgb: str
    flow_x: str
    flow_y: str
    zero_first_flow: bool  # True: N flow frames, the first is frame 1 → frame 1; False: N−1, flow k = frame k → k+1
    source: str  # who reads and writes this convention

    def template(self, modality="rgb", component=None):
        if modality == "rgb":
            return self.rgb
        if component not in COMPONENTS:
            raise ValueError(f"flow frames need a component 'x' or 'y', got {component!r}")
        return self.flow_x if component == "x" else self.flow_y

    def name(self, k, modality="rgb", component=None):
        """The file (or pack entry) name of frame ``k`` (1-based)."""
        return self.template(modality, component).format(k)

    def index_of(self, name, modality="rgb", component=None):
        """The index ``name`` carries under this convention, or None when it is not such a frame name."""
        match = _pattern(self.template(modality, component)).match(name)
        return int(match.group(1)) if match else None

    def flow_count(self, n_frames):
        """Flow frames the flow of ``n_frames`` RGB frames has under this convention."""
        return n_frames if self.zero_first_flow else max(0, n_frames - 1)

    def flow_pair(self, k):
        """(from, to): the frames (1-based) whose motion flow frame ``k`` holds."""
        return (max(1, k - 1), k) if self.zero_first_flow else (k, k + 1)


NAMINGS = {
    # mmaction2 tools/data (denseflow), PaddleVideo extract_rawframes.py; the pipeline's default
    "mmaction": Naming("img_{:05d}.jpg", "flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg", False,
                       "mmaction2 / PaddleVideo rawframes"),
    # mmaction2's Kinetics-400 flow configs read filename_tmpl='{}_{:05d}.jpg' with modality='Flow', i.e. x_/y_
    # (open-mmlab/mmaction2 tools/data/activitynet/tsn_extract_flow_feat_config.py, configs/recognition/tsn/*flow*)
    "mmaction_k400_flow": Naming("img_{:05d}.jpg", "x_{:05d}.jpg", "y_{:05d}.jpg", False,
                                 "mmaction2 Kinetics-400 flow configs"),
    # 3D-ResNets image_{:05d}.jpg; MindSpore-I3D writes flow as image_{:05d}x.jpg / image_{:05d}y.jpg in one folder
    # per video, N of them, the first computed from frame 1 to itself (mindspore-ai/models
    # research/cv/I3D/src/tools/convert_rgb_to_flow.py cal_for_frames/save_flow; read by src/get_dataset.py
    # flow_video_loader; n_frames holds the largest image index, src/tools/generate_n_frames.py)
    "3dresnets": Naming("image_{:05d}.jpg", "image_{:05d}x.jpg", "image_{:05d}y.jpg", True,
                        "3D-ResNets-PyTorch / MindSpore-I3D"),
}

_PATTERNS = {}


def _pattern(template):
    if template not in _PATTERNS:
        prefix, suffix = template.split("{:05d}")
        _PATTERNS[template] = re.compile(f"^{re.escape(prefix)}([0-9]{{5,}}){re.escape(suffix)}$")
    return _PATTERNS[template]


def naming_of(naming):
    """The :class:`Naming` called ``naming`` (or ``naming`` itself); FrameError for an unknown name."""
    if isinstance(naming, Naming):
        return naming
    try:
        return NAMINGS[naming]
    except KeyError:
        raise FrameError(f"unknown frame naming {naming!r} (known: {', '.join(NAMINGS)})") from None


def naming_name(naming):
    """The name (a key of :data:`NAMINGS`) of a :class:`Naming` or of a name."""
    named = naming_of(naming)
    return next(key for key, value in NAMINGS.items() if value == named)


def describe_naming(naming):
    """What a manifest records about its tree's names (JSON): the naming's name, its templates, the flow count."""
    named = naming_of(naming)
    name = naming_name(named)
    rule = "n_frames (flow 1 = frame 1 -> 1)" if named.zero_first_flow else "n_frames - 1 (flow k: frame k -> k+1)"
    return json.dumps({"naming": name, "rgb": named.rgb, "flow_x": named.flow_x, "flow_y": named.flow_y,
                       "flow_count": rule})


def described_naming(text):
    """The naming's name from :func:`describe_naming`'s JSON (manifests without one use ``mmaction``)."""
    try:
        name = json.loads(text).get("naming", "mmaction") if text else "mmaction"
    except (ValueError, AttributeError):
        raise FrameError(f"not a frame naming record: {text[:60]!r}") from None
    naming_of(name)
    return name


def recorded_namings(attrs):
    """The rgb and flow :class:`Naming` a manifest's metadata records (:func:`describe_naming` JSON under ``naming``
    and ``flow_naming``): mmaction when it records none, the rgb naming for flow when it records only that."""
    rgb = described_naming(attrs.get("naming"))
    flow = described_naming(attrs["flow_naming"]) if attrs.get("flow_naming") else rgb
    return naming_of(rgb), naming_of(flow)


def is_frame_entry(name, naming="mmaction"):
    """True for a name a video's frame storage holds under ``naming``: a frame, a flow frame or a marker."""
    naming = naming_of(naming)
    return (name in (FRAMES_MARKER, FLOW_MARKER) or naming.index_of(name) is not None
            or any(naming.index_of(name, "flow", c) is not None for c in COMPONENTS))


def is_flow_entry(name, naming="mmaction"):
    """True for a flow frame or the flow marker (what a flow rewrite replaces)."""
    naming = naming_of(naming)
    return name == FLOW_MARKER or any(naming.index_of(name, "flow", c) is not None for c in COMPONENTS)


# ---------------------------------------------------------------------------------------------------- storages

class _FolderStorage:
    kind = "frames"

    def __init__(self, path):
        self.path = Path(path)

    def read(self, name):
        with open(self.path / name, "rb") as handle:  # a Python open: any file name the OS accepts
            return handle.read()

    def names(self):
        return os.listdir(self.path)

    def where(self, name):
        return str(self.path / name)

    def close(self):
        pass


class _PackStorage:
    kind = "packs"

    def __init__(self, path):
        self.path = Path(path)
        self._pack = None

    def _open(self):
        if self._pack is None:
            try:
                self._pack = open_packed(self.path)
            except PackError as error:
                raise FrameError(str(error)) from None
        return self._pack

    def read(self, name):
        pack = self._open()
        if name not in pack:
            raise FileNotFoundError(self.where(name))
        return pack.read(name)

    def names(self):
        return self._open().names()

    def where(self, name):
        return f"{self.path}:{name}"

    def close(self):
        if self._pack is not None:
            self._pack.close()
            self._pack = None

    def __getstate__(self):  # a pickled source reopens its pack where it is used (DataLoader workers)
        return {"path": self.path, "_pack": None}


# the one storage vocabulary (config `storage:`, tree records, the stages): frames (a folder of JPEGs per video),
# packs (one file per video holding the same JPEGs) or videos (one re-encoded video per video id, rgb only)
STORAGES = ("frames", "packs", "videos")
_JPEG_STORAGES = {"frames": _FolderStorage, "packs": _PackStorage}


def storage_path(root, video_id, storage):
    """Where ``video_id``'s frames live under ``root`` in a JPEG ``storage`` (frames or packs)."""
    if storage == "packs":
        return Path(f"{Path(root) / video_id}{PACK_SUFFIX}")
    if storage == "frames":
        return Path(root) / video_id
    raise FrameError(f"unknown frame storage {storage!r} (known: {', '.join(STORAGES)})")


def find_storage(root, video_id):
    """``(storage, path)`` of the frames of ``video_id`` under ``root`` (a folder first, then a pack), or None."""
    for storage in _JPEG_STORAGES:
        path = storage_path(root, video_id, storage)
        if path.is_dir() if storage == "frames" else path.is_file():
            return storage, path
    return None


def _marker_count(text, where):
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        raise FrameError(f"{where}: not a frame count ({text[:40]!r})") from None


class _Closing:
    """``with frames:`` closes what the frames hold open (a pack, a decoder) at the end of the block."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoFrames(_Closing):
    """The rgb or flow frames of one video; cheap to open (nothing is read until asked), a context manager."""

    def __init__(self, root, video_id, modality="rgb", naming="mmaction", storage=None):
        if modality not in MODALITIES:
            raise FrameError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
        self.naming = naming_of(naming)
        try:  # ids come from lists: never a path outside root
            safe_relative(video_id, f"{root}: video id")
        except UserError as error:
            raise FrameError(f"{error} (not a relative class/video path)") from None
        self.modality, self.video_id = modality, video_id
        if storage is None:
            found = find_storage(root, video_id)
            if found is None:
                raise FrameError(f"{Path(root) / video_id}: no frames (no folder, {PACK_SUFFIX} file or video)")
            storage, path = found
        else:
            path = storage_path(root, video_id, storage)
        self.storage, self.path = storage, path
        self._store = _JPEG_STORAGES[storage](path)
        self._length = None
        self._names = None

    # counting
    def __len__(self):
        if self._length is None:
            self._length = self.marked_count()
            if self._length is None and self.modality == "flow" and self.naming.zero_first_flow:
                self._length = self._marker(FRAMES_MARKER)  # MindSpore-I3D: as many flow frames as frames
            if self._length is None:
                self._length = self.contiguous()[0]
        return self._length

    def _marker(self, name):
        try:
            return _marker_count(self._store.read(name).decode(errors="replace"), self._store.where(name))
        except FileNotFoundError:
            return None

    def marked_count(self):
        """The count the storage's marker records (rgb: ``n_frames``; flow: ``.flow_done``, written last by
        ``prep flow``, so it also says the flow is complete), or None."""
        return self._marker(FRAMES_MARKER if self.modality == "rgb" else FLOW_MARKER)

    def names(self):
        """Every entry name of the video's storage (listed once per open)."""
        if self._names is None:
            try:
                self._names = self._store.names()
            except FileNotFoundError:
                raise FrameError(f"{self.path}: no frames (not found)") from None
        return self._names

    def contiguous(self):
        """``(N, problem)`` from the listing: frames 1..N are all there; ``problem`` is None, or says what follows
        frame N (a gap, a stray numbered file, x and y flow counts that differ)."""
        components = [None] if self.modality == "rgb" else list(COMPONENTS)
        counts, problem = [], None
        for component in components:
            numbers = {self.naming.index_of(n, self.modality, component) for n in self.names()} - {None}
            n = 0
            while n + 1 in numbers:
                n += 1
            counts.append(n)
            if len(numbers) != n and problem is None:
                template = self.naming.template(self.modality, component)
                first_stray = template.format(min(numbers - set(range(1, n + 1))))
                problem = (f"{template.format(1)}..{template.format(n)} then {first_stray}" if n
                           else f"no {template.format(1)} but {first_stray}")
        if len(set(counts)) > 1 and problem is None:
            problem = f"{counts[0]} x and {counts[1]} y flow frames"
        return min(counts), problem

    def verify(self):
        """The frame count from the listing, checked: FrameError naming the problem on a gap or stray file."""
        n, problem = self.contiguous()
        if problem:
            raise FrameError(f"{self.path}: frames are not numbered 1..N: {problem}")
        return n

    # reading
    def name(self, k, component=None):
        return self.naming.name(k, self.modality, component)

    def read_bytes(self, k, component=None):
        """The stored JPEG bytes of frame ``k`` (1-based); flow frames need ``component`` 'x' or 'y'."""
        if self.modality == "rgb" and component is not None:
            raise FrameError(f"{self.path}: rgb frames have no component {component!r}")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise FrameError(f"{self.path}: frame index {k!r} (frames are numbered from 1)")
        name = self.name(int(k), component)
        try:
            return self._store.read(name)
        except FileNotFoundError:
            raise FrameError(f"{self._store.where(name)}: missing frame") from None

    def _decode(self, k, component, flags):
        data = self.read_bytes(k, component)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if image is None:
            raise FrameError(f"{self._store.where(self.name(int(k), component))}: unreadable image")
        return image

    def read(self, k, reduce=1):
        """Frame ``k`` (1-based): rgb H×W×3 uint8 RGB, flow H×W×2 uint8 (x, y); ``reduce`` 2, 4 or 8 decodes at
        that fraction of the size (libjpeg's DCT scaling: sizes round up), much faster than decode + resize."""
        if reduce not in REDUCE_COLOR:
            raise FrameError(f"reduce must be one of {sorted(REDUCE_COLOR)}, got {reduce!r}")
        if self.modality == "rgb":
            return self._decode(k, None, REDUCE_RGB[reduce])  # libjpeg writes RGB: no conversion pass
        x, y = (self._decode(k, c, REDUCE_GRAY[reduce]) for c in COMPONENTS)
        if x.shape != y.shape:
            raise FrameError(f"{self.path}: flow frame {k}: x is {x.shape[1]}x{x.shape[0]}, y {y.shape[1]}x{y.shape[0]}")
        return cv2.merge([x, y])  # H×W×2 (np.stack: 4× the time)

    def read_many(self, numbers, reduce=1):
        """``(k, image)`` for each distinct frame number, in increasing order (as the videos storage's planned read)."""
        for k in sorted({int(k) for k in np.asarray(numbers).reshape(-1).tolist()}):
            yield k, self.read(k, reduce)

    def read_gray(self, k):
        """RGB frame ``k`` as one grayscale plane (as OpenCV's BGR → GRAY), the input of optical flow."""
        return cv2.cvtColor(self._decode(k, None, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)

    def close(self):
        self._store.close()


# ----------------------------------------------------------------------------------------------------- video files
# The `videos` storage: one re-encoded video per video id (prep/reencode.py), decoded with PyAV rather than decord
# 0.6 (docs/storage.md; both measured side by side in tests/benchmarks/bench_storage.py): any frame size (decord
# fails on widths below 64: `from_size == to_size`), file names of any bytes (non-UTF-8 ones opened as Python files),
# maintained. Only the frames asked for are decoded, planned per clip (VideoDecoder.frames_at): the frame numbers
# sorted, the decoder fed from a keyframe once per group and forward from there, and the packets of non-reference
# frames nobody asked for never decoded; decoders stay open per worker process across clips (cached_decoder).

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
DECODER_CACHE = 8  # open decoders per process (a DataLoader worker): a few MB each, closed on eviction
VIDEO_DECODERS = ("cpu", "nvdec", "auto")  # nvdec: the GPU's video engines through PyAV's FFmpeg (CUDA hwaccel)
SEEK_AFTER = 16  # a video without packet timestamps: seek rather than decode forward past this many frames


def find_video(root, video_id):
    """The video file of ``video_id`` under ``root`` (``root/video_id.mp4`` or another VIDEO_SUFFIXES), or None."""
    for suffix in VIDEO_SUFFIXES:
        path = Path(f"{Path(root) / video_id}{suffix}")
        if path.is_file():
            return path
    return None


def gpu_video_decoding():
    """None when this process can decode video on an NVIDIA GPU's engines (PyAV's FFmpeg has the CUDA device type
    and a GPU is visible), else why not."""
    try:
        from av.codec.hwaccel import hwdevices_available
    except ImportError:
        return "PyAV is not installed (pip install av)"
    if "cuda" not in hwdevices_available():
        return "PyAV's FFmpeg has no CUDA device support"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1") or not Path("/dev/nvidiactl").exists():
        return "no NVIDIA GPU visible"
    return None


def choose_video_decoder(choice, gpu=None):
    """The decoder a job uses for video files: ``cpu``, or ``cuda:N`` (NVDEC on GPU N, default the process's
    LOCAL_RANK as torchrun sets it). ``auto`` takes NVDEC where :func:`gpu_video_decoding` allows it, else the CPU;
    ``nvdec`` where it does not is a FrameError saying why."""
    if choice not in VIDEO_DECODERS:
        raise FrameError(f"video decoder must be one of {', '.join(VIDEO_DECODERS)}, got {choice!r}")
    if choice == "cpu":
        return "cpu"
    problem = gpu_video_decoding()
    if problem:
        if choice == "nvdec":
            raise FrameError(f"video decoder nvdec: {problem} (use cpu or auto)")
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) if gpu is None else gpu}"


def _h264_disposable(data, length_size):
    """True when an H.264 access unit (length-prefixed NAL units, as in mp4) is a picture no other frame
    references (its slices' nal_ref_idc is 0, ITU-T H.264 7.4.1): the decoder may skip it, and nothing else changes."""
    offset, size = 0, len(data)
    while offset + length_size < size:
        length = int.from_bytes(data[offset:offset + length_size], "big")
        header = data[offset + length_size]
        if header & 0x1F in (1, 5):  # a coded slice (non-IDR, IDR)
            return header & 0x60 == 0
        offset += length_size + length
    return False


class VideoDecoder:
    """The frames of one video file, 0-based, on ``threads`` decoder threads.

    Opened lazily and again after a fork or unpickling (a DataLoader worker opens its own; no handle is pickled).
    ``frames()`` yields every frame that decodes, in order, skipping damaged packets as the ffmpeg CLI and OpenCV
    do (the count is the frames storage's count); ``frames_at(indices)`` and ``frame(i)`` are random access,
    bounded: they never decode more than the video holds, and a frame past the decodable end is an error, whatever
    the container claims.
    """

    def __init__(self, path, threads=1, device="cpu"):
        self.path, self.threads, self.device = Path(path), threads, device
        self._container = self._file = self._owner = None

    def __getstate__(self):
        return {"path": self.path, "threads": self.threads, "device": self.device, "_container": None, "_file": None,
                "_owner": None}

    def _open(self):
        if self._container is not None and self._owner == os.getpid():
            return self._stream
        self._container = self._file = None
        try:  # any file name (non-UTF-8 ones read as Python files): prep.base.media, as every decoder opens videos
            self._container, self._file = media.open_container(self.path, gpu=self.device)
        except media.DecodeError as error:
            raise FrameError(str(error)) from None
        self.damage = media.Damage()
        stream = self._stream = self._container.streams.video[0]
        stream.codec_context.thread_count = self.threads
        self._rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self._start = stream.start_time or 0
        time_base = stream.time_base  # frame number = round((pts − start) · time_base · rate), in integers:
        self._pts_scale = (time_base.numerator * self._rate.numerator, time_base.denominator * self._rate.denominator) \
            if time_base and self._rate else None  # Fraction arithmetic per frame cost 0.8 ms (profiled)
        self._owner, self._packets, self._pending, self._next, self._last = os.getpid(), None, [], None, None
        self._index, self._fed, self._ready, self._shown = None, None, {}, -1
        return stream

    # facts
    def info(self):
        """Container facts: ``container_frames`` (what the container claims; 0 when it does not say), ``fps``,
        ``rate`` (the same as a fraction, or None), ``width``, ``height``, ``comment`` (the container's comment
        tag: prep reencode records its encoder settings there)."""
        stream = self._open()
        return {"container_frames": int(stream.frames or 0), "fps": float(self._rate or 0.0), "rate": self._rate,
                "width": stream.codec_context.width, "height": stream.codec_context.height,
                "comment": self._container.metadata.get("comment", "")}

    def container_frames(self):
        """The frame count the container states, or — when it states none — its video packets, counted without
        decoding."""
        stream = self._open()
        if stream.frames:
            return int(stream.frames)
        count = sum(1 for packet in self._container.demux(stream) if packet.size)
        self._rewind()
        return count

    # decoding
    def _rewind(self):
        self._container.seek(0, stream=self._stream, backward=True)
        self._packets, self._pending, self._next, self._fed = self._container.demux(self._stream), [], 0, None

    def _decode(self, packet):
        """The frames one packet gives (None: drain the decoder); a damaged packet gives none and is noted
        (prep.base.media's rule for damaged streams)."""
        return list(media.decode_packet(self._stream.codec_context if packet is None else packet, self.damage))

    def _decoded(self):
        """The next decoded frame (damaged packets skipped: prep.base.media's rule), or None at the end."""
        while not self._pending:
            packet = next(self._packets, None)
            if packet is None:
                return None
            self._pending = self._decode(packet)  # the flush packet at the end drains the decoder
        return self._pending.pop(0)

    def frames(self):
        """Every frame that decodes, in order (``av.VideoFrame``)."""
        self._open()
        self._rewind()
        while (frame := self._decoded()) is not None:
            self._next += 1
            yield frame

    def _index_of(self, frame):
        """The frame number of a frame or packet from its timestamp (rounded half to even), or None."""
        if frame.pts is None or self._pts_scale is None:
            return None
        numerator, denominator = self._pts_scale
        whole, rest = divmod((frame.pts - self._start) * numerator, denominator)
        return whole + (2 * rest > denominator or (2 * rest == denominator and whole % 2 == 1))

    def _packet_index(self):
        """The video's packets in decode order, held in memory (a re-encoded video is a few MB; demuxing it costs
        ~1 ms), with each one's frame number and keyframe flag — or None when some packet has no timestamp (then
        reads fall back to seeking the container)."""
        stream = self._open()
        if self._index is None:
            self._container.seek(0, stream=stream, backward=True)
            packets = [packet for packet in self._container.demux(stream) if packet.size]
            self._packets, self._pending, self._next = None, [], None
            positions = [self._index_of(packet) for packet in packets]
            if not packets or None in positions:
                self._index = False
                return None
            extradata = stream.codec_context.extradata or b""
            length_size = (extradata[4] & 3) + 1 if stream.codec_context.name == "h264" and len(extradata) > 4 \
                and extradata[0] == 1 else None  # avcC: length-prefixed NAL units
            keys = [i for i, packet in enumerate(packets) if packet.is_keyframe] or [0]
            self._index = {"packets": packets, "positions": positions, "where": dict(zip(positions, range(len(packets)))),
                           "keys": keys, "key_positions": [positions[i] for i in keys], "length_size": length_size,
                           "disposable": {}}
        return self._index or None

    def _disposable(self, index, number):
        if index["length_size"] is None:
            return False
        if number not in index["disposable"]:
            data = memoryview(index["packets"][number])
            index["disposable"][number] = _h264_disposable(data, index["length_size"])
        return index["disposable"][number]

    def frames_at(self, indices):
        """``(index, frame)`` for each distinct 0-based index, in increasing order: the decoder is fed from the
        keyframe at or before a frame only when the frames already fed cannot reach it, then forward, skipping the
        packets of non-reference frames not asked for. IndexError past the frames that decode."""
        wanted = sorted({int(i) for i in indices})
        self._open()
        index = self._packet_index()
        if index is None:
            for target in wanted:
                yield target, self.frame(target)
            return
        wanted_set, packets, codec = set(wanted), index["packets"], self._stream.codec_context
        for target in wanted:
            if self._last is not None and self._last[0] == target:  # asked again (read, then read_gray)
                yield target, self._last[1]
                continue
            if target not in index["where"]:
                raise IndexError(f"{self.path}: frame {target + 1} is past the frames that decode")
            key = index["keys"][max(0, bisect.bisect_right(index["key_positions"], target) - 1)]
            ready = self._ready
            reachable = self._fed is not None and key <= self._fed and (target in ready or (
                target > self._shown and index["where"][target] not in self._skipped))
            if not reachable:  # start again from the keyframe of the target's group
                codec.flush_buffers()
                self._fed, self._shown, self._ready, self._skipped = key - 1, -1, {}, set()
                ready = self._ready
            while target not in ready:
                self._fed += 1
                if self._fed > len(packets):
                    self._fed = None
                    raise IndexError(f"{self.path}: frame {target + 1} is past the frames that decode")
                if self._fed < len(packets):
                    number = self._fed
                    if index["positions"][number] not in wanted_set and self._disposable(index, number):
                        self._skipped.add(number)
                        continue
                    decoded = self._decode(packets[number])
                else:
                    decoded = self._decode(None)  # the end: drain the frames the decoder holds back
                for frame in decoded:
                    position = self._index_of(frame)
                    if position is None:  # a frame without a timestamp cannot be placed: never handed out
                        continue
                    self._shown = max(self._shown, position)
                    if position >= target:
                        ready[position] = frame
            frame = ready.pop(target)
            for stale in [p for p in ready if p < target]:
                del ready[stale]
            self._last = (target, frame)
            yield target, frame

    def frame(self, index):
        """Frame ``index`` (0-based) as an ``av.VideoFrame``; IndexError past the frames that decode."""
        stream = self._open()
        if self._last is not None and self._last[0] == index:  # asked again (read, then read_gray): no new decode
            return self._last[1]
        if self._packet_index() is not None:
            return next(self.frames_at([index]))[1]
        if self._next is None or index < self._next or index - self._next > SEEK_AFTER:
            pts = self._start + int(index / (self._rate * stream.time_base)) if self._rate else 0
            self._container.seek(max(pts, self._start), stream=stream, backward=True)
            self._packets, self._pending, self._next = self._container.demux(stream), [], None
        restarted = False
        while True:
            frame = self._decoded()
            if frame is None:
                self._next = None
                raise IndexError(f"{self.path}: frame {index + 1} is past the frames that decode")
            position = self._index_of(frame)
            if position is None:  # no timestamps: count from the start
                if self._next is None:
                    self._rewind()
                    continue
                position = self._next
            self._next = position + 1
            if position == index:
                self._last = (index, frame)
                return frame
            if position > index:  # the seek landed past the frame (a damaged index): decode from the start, once
                if restarted:
                    raise FrameError(f"{self.path}: frame {index + 1} cannot be reached (timestamps out of order)")
                restarted = True
                self._rewind()

    def close(self):
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._index = self._fed = None

    def __del__(self):
        self.close()


_DECODERS = threading.local()  # per thread: a decoder is never shared (check_list counts videos on threads)


def decoder_cache():
    """This thread's open decoders, {key: VideoDecoder}, least recently used first (empty again after a fork: the
    parent's decoders are not the child's to use or close)."""
    if getattr(_DECODERS, "owner", None) != os.getpid():
        _DECODERS.owner, _DECODERS.open = os.getpid(), {}
    return _DECODERS.open


def cached_decoder(path, threads=1, device="cpu"):
    """This thread's open decoder of ``path`` (opened and its packets indexed once, kept across clips): the
    ``DECODER_CACHE`` most recently used stay open, the least recently used is closed when another opens. A file
    rewritten since (inode, size or mtime changed) gets a new decoder. Never pickled: a worker fills its own."""
    try:
        stat = os.stat(path)
    except OSError:
        raise FrameError(f"{path}: no such video") from None
    cache = decoder_cache()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, threads, device)
    decoder = cache.pop(key, None) or VideoDecoder(path, threads, device)
    cache[key] = decoder  # dicts keep insertion order: the first key is the least recently used
    while len(cache) > max(1, DECODER_CACHE):
        cache.pop(next(iter(cache))).close()
    return decoder


class VideoFileFrames(_Closing):
    """The rgb frames of one re-encoded video (storage ``videos``: ``root/video_id.mp4``), with :class:`VideoFrames`'
    interface; frame k (1-based) is decoded frame k − 1. Flow is never stored as video: it stays JPEG. Its decoder
    comes from the process's cache (:func:`cached_decoder`): closing the frames leaves it open for the next clip."""

    storage = "videos"

    def __init__(self, root, video_id, modality="rgb", naming="mmaction", threads=1, device="cpu"):
        if modality != "rgb":
            raise FrameError(f"{Path(root) / video_id}: flow is stored as JPEG folders or packs, never as video")
        self.path = find_video(root, video_id)
        if self.path is None:
            raise FrameError(f"{Path(root) / video_id}: no video ({', '.join(VIDEO_SUFFIXES)})")
        self.modality, self.video_id, self.naming = modality, video_id, naming_of(naming)
        self.decoder = cached_decoder(self.path, threads, device)
        self._length = None

    def __len__(self):
        """The container's frame count: re-encoded videos state it, checked against the decoded count when written
        (prep/reencode.py). Reading past the frames that really decode raises FrameError, never hangs."""
        if self._length is None:
            self._length = self.decoder.container_frames()
        return self._length

    def contiguous(self):
        """``(N, None)``: a video has no gaps to find (the count was checked when it was re-encoded)."""
        return len(self), None

    def verify(self):
        return len(self)

    def _check(self, k):
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise FrameError(f"{self.path}: frame index {k!r} (frames are numbered from 1)")
        return int(k) - 1

    @staticmethod
    def _image(frame, reduce):
        if reduce not in REDUCE_COLOR:
            raise FrameError(f"reduce must be one of {sorted(REDUCE_COLOR)}, got {reduce!r}")
        operations = media.orientation(media.display_matrix(frame))  # a source video's rotation, as every decoder
        if reduce == 1:
            return media.orient(media.reformat(frame, format="rgb24").to_ndarray(), operations)
        return media.orient(media.reformat(frame, width=-(-frame.width // reduce), height=-(-frame.height // reduce),
                                           format="rgb24", interpolation="AREA").to_ndarray(), operations)

    def read(self, k, reduce=1):
        """Frame ``k`` (1-based) as H×W×3 uint8 RGB; ``reduce`` 2, 4 or 8 scales it down in the colour conversion
        (sizes round up, as the JPEG storages' reduced decode)."""
        return next(self.read_many([k], reduce))[1]

    def read_many(self, numbers, reduce=1):
        """``(k, image)`` for each distinct frame number, in increasing order, decoded in one planned pass
        (:meth:`VideoDecoder.frames_at`); only the frames yielded are colour-converted."""
        indices = [self._check(k) for k in np.asarray(numbers).reshape(-1).tolist()]
        try:
            for index, frame in self.decoder.frames_at(indices):
                yield index + 1, self._image(frame, reduce)
        except IndexError as error:
            raise FrameError(str(error)) from None

    def read_gray(self, k):
        """Frame ``k`` as one grayscale plane, as OpenCV's RGB → GRAY (the input of optical flow)."""
        return cv2.cvtColor(self.read(k), cv2.COLOR_RGB2GRAY)

    def read_bytes(self, k, component=None):
        raise FrameError(f"{self.path}: the videos storage holds no JPEG bytes (frames are decoded from the video)")

    def close(self):
        pass  # the decoder stays in the process's cache (cached_decoder), for this video's next clip


def open_frames(root, video_id, modality="rgb", naming="mmaction", storage=None, device="cpu"):
    """The :class:`VideoFrames` of ``video_id`` under ``root`` (storage detected when None: a folder, a pack, then
    a video file — :class:`VideoFileFrames`, same interface, decoded on ``device``: :func:`choose_video_decoder`)."""
    if storage == "videos" or (storage is None and find_storage(root, video_id) is None
                              and find_video(root, video_id) is not None):
        return VideoFileFrames(root, video_id, modality, naming, device=device)
    return VideoFrames(root, video_id, modality, naming, storage)


def count_frames(root, video_id, modality="rgb", naming="mmaction", storage=None):
    """Frames (rgb) or flow frames (flow) of ``video_id`` under ``root``: from the marker, else one listing."""
    with open_frames(root, video_id, modality, naming, storage) as frames:
        return len(frames)


def frame_videos(root, level=None, naming="mmaction"):
    """Video ids of a frames tree: folders and packs at ``level`` 1 (``root/video``) or 2 (``root/class/video``);
    ``level=None`` decides per entry (a folder holding frames is a video, other folders are classes)."""
    root = Path(root)
    if not root.is_dir():
        raise FrameError(f"{root}: no such directory")
    ids = set()

    def add(path, depth):
        if path.name.startswith("."):
            return
        if path.is_file() and path.name.endswith(PACK_SUFFIX):
            ids.add(path.relative_to(root).as_posix()[:-len(PACK_SUFFIX)])
        elif path.is_file() and path.suffix in VIDEO_SUFFIXES:
            ids.add(path.relative_to(root).with_suffix("").as_posix())
        elif path.is_dir():
            is_video = depth == level if level else any(is_frame_entry(n, naming) for n in os.listdir(path))
            if is_video:
                ids.add(path.relative_to(root).as_posix())
            elif depth < (level or 2):
                for child in path.iterdir():
                    add(child, depth + 1)

    for entry in root.iterdir():
        add(entry, 1)
    return sorted(ids)
