"""Optical flow as prep computes it and train's ``predict`` recomputes it: the estimators and the quantization.

TV-L1 is OpenCV contrib's ``DualTVL1OpticalFlow_create()`` with default parameters on grayscale frames; each
component is quantized with bound b into a uint8 as denseflow does: v > b → 255, v < −b → 0, else
round(255·(v + b) / 2b) in double precision, half to even (:func:`quantize`).
"""
import cv2
import numpy as np

from prep.base.errors import UserError

ALGORITHMS = ("tvl1", "dis", "farneback")
FLOW_BOUND = 20.0  # the quantization bound b of the pipeline (v > b → 255, v < −b → 0): its one home; trees record theirs
_ESTIMATORS = {}


def create_estimator(algorithm):
    """A callable (previous_gray, next_gray) -> flow (H, W, 2) float32."""
    if algorithm == "tvl1":
        if not hasattr(cv2, "optflow"):
            raise UserError("OpenCV without the contrib modules: TV-L1 needs "
                            "`pip install opencv-contrib-python-headless` (and no plain opencv-python beside it)")
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        return lambda prev, nxt: tvl1.calc(prev, nxt, None)
    if algorithm == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda prev, nxt: dis.calc(prev, nxt, None)
    if algorithm == "farneback":
        return lambda prev, nxt: cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise UserError(f"unknown flow algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")


def quantize(component, bound=FLOW_BOUND):
    """Flow component (pixels) → uint8 exactly as denseflow: v > b → 255, v < −b → 0, else
    cvRound(255·(v − (−b)) / (b − (−b))) evaluated in double precision, cvRound rounding half to even
    (open-mmlab/denseflow src/common.cpp convertFlowToImage, the CAST macro; its float flow meets double bounds)."""
    value = np.asarray(component, dtype=np.float64)
    low, high = -float(bound), float(bound)
    scaled = np.rint(255.0 * (np.clip(value, low, high) - low) / (high - low))  # rint: half to even, as cvRound
    return scaled.astype(np.uint8)


def cached_estimator(algorithm):
    """One estimator per process and algorithm, reused across videos (TV-L1 keeps no state between calls)."""
    if algorithm not in _ESTIMATORS:
        _ESTIMATORS[algorithm] = create_estimator(algorithm)
    return _ESTIMATORS[algorithm]


def dequantize(jpeg_pixels, bound=FLOW_BOUND):
    """Flow JPEG pixels (0–255) back to flow values: v = q·2b/255 − b (the inverse of :func:`quantize`)."""
    return jpeg_pixels.astype(np.float32) * (2 * bound / 255.0) - bound
