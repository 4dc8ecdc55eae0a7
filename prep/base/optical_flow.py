"""Optical flow as prep computes it and train's ``predict`` recomputes it: the estimators and the quantization.

TV-L1 is OpenCV contrib's ``DualTVL1OpticalFlow_create()`` on grayscale frames, with its default parameters unless
``parameters`` changes some (:data:`TVL1_PARAMETERS`), computed by OpenCV (backend ``opencv``) or by its torch twin
:mod:`prep.base.tvl1_torch` (backend ``torch``, any torch device, the same numbers); each component is quantized
with bound b into a uint8 as denseflow does: v > b → 255, v < −b → 0, else round(255·(v + b) / 2b) in double
precision, half to even (:func:`quantize`).

Two forms, one contract: :func:`create_estimator` gives a callable (previous_gray, next_gray) → (H, W, 2) float32;
:func:`create_batch_estimator` one that takes many pairs at once — (N, H, W) uint8 arrays → (N, H, W, 2) — and, for
the torch backend, batches the pairs that several threads hand it into one computation on the device.
"""
import dataclasses
import queue
import threading
from concurrent.futures import Future

import cv2
import numpy as np

from prep.base.errors import UserError
from prep.base.tvl1_parameters import TVL1_PARAMETERS, flow_parameters

ALGORITHMS = ("tvl1", "dis", "farneback")
FLOW_BOUND = 20.0  # the quantization bound b of the pipeline (v > b → 255, v < −b → 0): its one home; trees record theirs
BACKENDS = ("opencv", "torch")
DEVICES = ("auto", "cpu", "cuda")
_ESTIMATORS = {}

# Bytes of device memory a frame pair needs per pixel in tvl1_torch (float32 fields, the double FMA temporaries and
# int64 tap indices of the cubic remap of three images, the median network's copies). Measured on the CPU at 340×256:
# peak resident memory grew by 60 MiB for one pair and 187 MiB for four (≈ 540–720 bytes per pixel); 1600 leaves room
# for the CUDA caching allocator, and batch_size_for spends only half the free memory.
_TVL1_BYTES_PER_PIXEL = 1600


def resolve_device(device):
    """``auto`` → ``cuda`` when this process sees a GPU, else ``cpu``; ``cuda`` without one is an error."""
    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise UserError(f"unknown flow device {device!r} (known: {', '.join(DEVICES)})")
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"flow device {device!r}: this process sees no GPU (flow.device: auto falls back to the CPU)")
    return device


def _opencv_tvl1(parameters):
    if not hasattr(cv2, "optflow"):
        raise UserError("OpenCV without the contrib modules: TV-L1 needs "
                        "`pip install opencv-contrib-python-headless` (and no plain opencv-python beside it)")
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    for name, value in parameters.items():
        getattr(tvl1, TVL1_PARAMETERS[name][0])(value)
    scales = tvl1.getScalesNumber()

    def estimate(prev, nxt):
        # calc() lowers its own scale count for a frame too small for it (tvl1flow.cpp `nscales = s`) and keeps it:
        # without the reset, one tiny video would change the flow of every later video of this process
        tvl1.setScalesNumber(scales)
        return tvl1.calc(prev, nxt, None)
    return estimate


def create_estimator(algorithm, backend="opencv", device="auto", parameters=None):
    """A callable (previous_gray, next_gray) -> flow (H, W, 2) float32; ``parameters``: TV-L1's that differ from
    OpenCV's defaults (:func:`flow_parameters`)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown flow backend {backend!r} (known: {', '.join(BACKENDS)})")
    parameters = flow_parameters(algorithm, parameters)
    if backend == "torch":
        batch = create_batch_estimator(algorithm, backend, device, parameters=parameters)
        return lambda prev, nxt: batch(prev[None], nxt[None])[0]
    if algorithm == "tvl1":
        return _opencv_tvl1(parameters)
    if algorithm == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda prev, nxt: dis.calc(prev, nxt, None)
    if algorithm == "farneback":
        return lambda prev, nxt: cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise UserError(f"unknown flow algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")


def batch_size_for(height, width, device, limit=64):
    """How many pairs of this size one torch TV-L1 call takes: what half the free memory of a GPU holds; on the CPU
    about a million pixels (small frames batched against torch's per-operation overhead, ~60 MB a 340×256 pair)."""
    import torch
    if not str(device).startswith("cuda"):
        return max(1, min(limit, (1 << 20) // (height * width)))
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return max(1, min(limit, int(free * 0.5) // (height * width * _TVL1_BYTES_PER_PIXEL)))


class BatchEstimator:
    """(N, H, W) uint8 previous frames and next frames → (N, H, W, 2) float32 flow. Thread-safe: for the torch
    backend the pairs that several threads hand in at once are computed together (a server thread gathers requests
    of one frame size into batches of up to ``batch_size`` pairs)."""

    def __init__(self, algorithm, backend="opencv", device="auto", batch_size=None, parameters=None):
        self.backend = backend
        self.algorithm = algorithm
        self.parameters = flow_parameters(algorithm, parameters)
        if backend == "opencv":
            self._single = create_estimator(algorithm, "opencv", parameters=self.parameters)
            self._lock = threading.Lock()
            return
        if algorithm != "tvl1":
            raise UserError(f"flow backend torch computes tvl1 only, not {algorithm!r}")
        self.device = resolve_device(device)
        from prep.base.tvl1_torch import DEFAULTS  # once here, not per batch: the twin's fields by OpenCV's names
        self._params = dataclasses.replace(DEFAULTS, **{TVL1_PARAMETERS[name][1]: value
                                                        for name, value in self.parameters.items()})
        self.batch_size = batch_size
        self._requests = queue.Queue()
        self._server = None

    def __call__(self, previous, following):
        previous, following = np.asarray(previous), np.asarray(following)
        if previous.shape != following.shape or previous.ndim != 3:
            raise ValueError(f"flow pairs must be two (N, H, W) arrays of one shape, got {previous.shape} and "
                             f"{following.shape}")
        if self.backend == "opencv":
            with self._lock:  # one OpenCV object, not reentrant
                return np.stack([self._single(p, n) for p, n in zip(previous, following)])
        if self._server is None:
            with _SERVER_LOCK:
                if self._server is None:
                    self._server = threading.Thread(target=self._serve, daemon=True, name="tvl1-batches")
                    self._server.start()
        done = Future()
        self._requests.put((previous, following, done))
        return done.result()

    def _limit(self, height, width):
        return self.batch_size or batch_size_for(height, width, self.device)

    def _serve(self):
        waiting = []  # (previous, following, future), gathered while the device was busy
        while True:
            if not waiting:
                waiting.append(self._requests.get())
            try:  # take whatever else arrived, without waiting for more
                while True:
                    waiting.append(self._requests.get_nowait())
            except queue.Empty:
                pass
            shape = waiting[0][0].shape[1:]
            batch = waiting[:1]
            try:  # whatever fails here fails the callers' threads, never this one (they would wait forever)
                limit = self._limit(*shape)
                batch, rest, pairs = [], [], 0
                for request in waiting:
                    fits = request[0].shape[1:] == shape and (not batch or pairs + len(request[0]) <= limit)
                    (batch if fits else rest).append(request)
                    pairs += len(request[0]) if fits else 0
                waiting = rest
                flows = self._compute(np.concatenate([r[0] for r in batch]), np.concatenate([r[1] for r in batch]),
                                      limit)
            except BaseException as error:  # noqa: B902 — raised again in each caller's thread
                for request in batch:
                    request[2].set_exception(error)
                waiting = [r for r in waiting if all(r is not failed for failed in batch)]
                continue
            start = 0
            for previous, _following, done in batch:
                done.set_result(flows[start:start + len(previous)])
                start += len(previous)

    def _compute(self, previous, following, limit):
        import torch

        from prep.base.tvl1_torch import tvl1_batch
        out = []
        with torch.inference_mode():
            for start in range(0, len(previous), limit):
                a = torch.from_numpy(previous[start:start + limit]).to(self.device, non_blocking=True)
                b = torch.from_numpy(following[start:start + limit]).to(self.device, non_blocking=True)
                out.append(tvl1_batch(a, b, self._params).cpu().numpy())
        return np.concatenate(out)


_SERVER_LOCK = threading.Lock()


def create_batch_estimator(algorithm, backend="opencv", device="auto", batch_size=None, parameters=None):
    """A :class:`BatchEstimator`: (N, H, W) uint8 pairs → (N, H, W, 2) float32."""
    if backend not in BACKENDS:
        raise UserError(f"unknown flow backend {backend!r} (known: {', '.join(BACKENDS)})")
    return BatchEstimator(algorithm, backend, device, batch_size, parameters)


def quantize(component, bound=FLOW_BOUND):
    """Flow component (pixels) → uint8 exactly as denseflow: v > b → 255, v < −b → 0, else
    cvRound(255·(v − (−b)) / (b − (−b))) evaluated in double precision, cvRound rounding half to even
    (open-mmlab/denseflow src/common.cpp convertFlowToImage, the CAST macro; its float flow meets double bounds)."""
    value = np.asarray(component, dtype=np.float64)
    low, high = -float(bound), float(bound)
    scaled = np.rint(255.0 * (np.clip(value, low, high) - low) / (high - low))  # rint: half to even, as cvRound
    return scaled.astype(np.uint8)


def cached_estimator(algorithm, backend="opencv", device="auto", parameters=None):
    """One batch estimator per process, algorithm, parameters, backend and device, reused across videos and shared by
    threads (TV-L1 keeps no state between calls)."""
    parameters = flow_parameters(algorithm, parameters)
    key = (algorithm, backend, device, tuple(parameters.items()))
    if key not in _ESTIMATORS:
        _ESTIMATORS[key] = create_batch_estimator(algorithm, backend, device, parameters=parameters)
    return _ESTIMATORS[key]


def dequantize(jpeg_pixels, bound=FLOW_BOUND):
    """Flow JPEG pixels (0–255) back to flow values: v = q·2b/255 − b (the inverse of :func:`quantize`)."""
    return jpeg_pixels.astype(np.float32) * (2 * bound / 255.0) - bound
