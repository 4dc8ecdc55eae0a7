"""Optional training augmentations: RandAugment on uint8 clips (in the DataLoader worker) and MixUp / CutMix on
the device batch (in the training loop), as mmaction2's RandAugment wrapper and RandomBatchAugment.

RandAugment draws ``num_ops`` ops per clip from :data:`OPS`; every frame of a clip gets the same op with the same
magnitude and sign, so motion stays coherent. Magnitudes run 0–10 (timm's ``rand-m9-n2`` scale): at 10, brightness /
contrast / sharpness factors reach 1 ± 0.9, rotation 30°, shear 0.3, translation 45 % of the side, posterize keeps 4
bits, solarize thresholds at 0. All randomness comes from the dataset item's generator, so a resumed run repeats
exactly. RGB only: flow values are motion, not intensities.

MixUp / CutMix take a ``numpy`` generator seeded by (seed, rank, epoch, step) and return soft targets (rows sum to 1).
"""
import cv2
import numpy as np
import torch

OPS = ("brightness", "contrast", "sharpness", "posterize", "solarize", "equalize", "autocontrast", "rotate",
       "shear_x", "shear_y", "translate_x", "translate_y")
FILL = (124, 116, 104)  # ImageNet mean: the border that geometric ops uncover


def _lut(frames, table):
    """Apply a (256,) or (channels, 256) uint8 lookup table to (T, H, W, C) uint8 frames."""
    table = np.asarray(table)
    if table.ndim == 1:
        return table.astype(np.uint8)[frames]
    out = np.empty_like(frames)
    for c in range(frames.shape[-1]):
        out[..., c] = table[c].astype(np.uint8)[frames[..., c]]
    return out


def _blend_lut(factor, degenerate):
    """Lookup table of clip(degenerate + factor · (x − degenerate)) (PIL ImageEnhance with a constant degenerate)."""
    x = np.arange(256, dtype=np.float32)
    return np.clip(np.round(degenerate + factor * (x - degenerate)), 0, 255)


def _warp(frames, matrix):
    height, width, channels = frames.shape[1:]
    fill = FILL[:channels] if channels <= 3 else 0
    out = np.empty_like(frames)
    for t, frame in enumerate(frames):
        warped = cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        out[t] = warped if warped.ndim == 3 else warped[..., None]
    return out


def apply_op(frames, op, magnitude, sign=1):
    """One op on uint8 (T, H, W, C) frames, the same for every frame; magnitude 0–10, sign ±1 for signed ops."""
    level = float(magnitude) / 10.0
    if op in ("brightness", "contrast", "sharpness"):
        factor = max(0.0, 1.0 + sign * 0.9 * level)
        if op == "brightness":
            return _lut(frames, _blend_lut(factor, 0.0))
        if op == "contrast":
            gray = frames.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) if frames.shape[-1] == 3 else frames
            return _lut(frames, _blend_lut(factor, float(np.mean(gray))))
        kernel = np.float32([[1, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13.0
        out = np.empty_like(frames)
        for t, frame in enumerate(frames):
            smooth = cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REPLICATE)
            blended = cv2.addWeighted(frame, factor, smooth.reshape(frame.shape), 1.0 - factor, 0.0)
            blended = blended.reshape(frame.shape)
            blended[0], blended[-1], blended[:, 0], blended[:, -1] = frame[0], frame[-1], frame[:, 0], frame[:, -1]
            out[t] = blended
        return out
    if op == "posterize":
        bits = max(1, 8 - int(round(4 * level)))
        return frames & np.uint8((0xFF << (8 - bits)) & 0xFF)
    if op == "solarize":
        threshold = 256 - int(round(256 * level))
        x = np.arange(256)
        return _lut(frames, np.where(x >= threshold, 255 - x, x))
    if op == "equalize":  # one table per channel from the whole clip's histogram: every frame the same mapping
        tables = []
        for c in range(frames.shape[-1]):
            hist = np.bincount(frames[..., c].ravel(), minlength=256)
            nonzero = hist[hist > 0]
            step = (nonzero.sum() - nonzero[-1]) // 255 if len(nonzero) else 0
            if step == 0:
                tables.append(np.arange(256))
                continue
            tables.append(np.clip((np.cumsum(hist) - hist + step // 2) // step, 0, 255))
        return _lut(frames, tables)
    if op == "autocontrast":
        tables = []
        for c in range(frames.shape[-1]):
            low, high = int(frames[..., c].min()), int(frames[..., c].max())
            x = np.arange(256, dtype=np.float32)
            tables.append(np.arange(256) if high <= low else np.clip(np.round((x - low) * 255.0 / (high - low)), 0, 255))
        return _lut(frames, tables)
    height, width = frames.shape[1:3]
    if op == "rotate":
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), sign * 30.0 * level, 1.0)
        return _warp(frames, matrix)
    if op in ("shear_x", "shear_y"):
        shear = sign * 0.3 * level
        matrix = np.float32([[1, shear, 0], [0, 1, 0]]) if op == "shear_x" else np.float32([[1, 0, 0], [shear, 1, 0]])
        # about the centre, so the clip does not drift to one side
        matrix[:, 2] = -(matrix[:, :2] @ np.float32([(width - 1) / 2.0, (height - 1) / 2.0])) + \
            np.float32([(width - 1) / 2.0, (height - 1) / 2.0])
        return _warp(frames, matrix)
    if op in ("translate_x", "translate_y"):
        shift = sign * 0.45 * level
        dx, dy = (shift * width, 0.0) if op == "translate_x" else (0.0, shift * height)
        return _warp(frames, np.float32([[1, 0, dx], [0, 1, dy]]))
    raise ValueError(f"unknown RandAugment op {op!r} (known: {', '.join(OPS)})")


def rand_augment(frames, rng, num_ops=2, magnitude=9):
    """``num_ops`` ops drawn uniformly (with replacement) from :data:`OPS`, each with a random sign."""
    if frames.shape[-1] != 3:
        raise ValueError("randaugment works on rgb clips only (3 channels); turn it off for flow")
    for _ in range(int(num_ops)):
        op = OPS[rng.integers(len(OPS))]
        sign = 1 if rng.random() < 0.5 else -1
        frames = apply_op(frames, op, magnitude, sign)
    return np.ascontiguousarray(frames)


def mixing_rng(seed, epoch, step, rank=0):
    """The batch-mixing generator: a function of (seed, rank, epoch, step) only, so a resumed run mixes the same."""
    return np.random.default_rng([int(seed), int(rank), int(epoch), int(step), 0x4D1C])


def one_hot(labels, num_classes):
    return torch.nn.functional.one_hot(labels, num_classes).float()


def mixed_targets(labels, perm, lam, num_classes):
    """λ · one_hot(labels) + (1 − λ) · one_hot(labels[perm]): soft targets whose rows sum to 1."""
    targets = one_hot(labels, num_classes)
    return lam * targets + (1 - lam) * targets[perm]


def mixup_clips(clips, alpha, rng):
    """λ ~ Beta(α, α); (λ · clips + (1 − λ) · clips[perm], perm, λ)."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.as_tensor(rng.permutation(clips.shape[0]), device=clips.device)
    return lam * clips + (1 - lam) * clips[perm], perm, lam


def cutmix_clips(clips, alpha, rng):
    """A box of area (1 − λ) pasted from clips[perm], the same box on every frame; λ becomes 1 − the box's actual
    (clipped) area fraction. Returns (clips, perm, λ)."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.as_tensor(rng.permutation(clips.shape[0]), device=clips.device)
    height, width = clips.shape[-2:]
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
    left, right = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
    clips = clips.clone()
    clips[..., top:bottom, left:right] = clips[perm][..., top:bottom, left:right]
    return clips, perm, 1.0 - (bottom - top) * (right - left) / float(height * width)


def mix_clips(clips, mixup_alpha, cutmix_alpha, rng):
    """MixUp or CutMix (p 0.5 each when both are on, as mmaction2's RandomBatchAugment): (clips, perm, λ), or None
    when both alphas are 0."""
    choices = [(f, a) for f, a in ((mixup_clips, mixup_alpha), (cutmix_clips, cutmix_alpha)) if a and a > 0]
    if not choices:
        return None
    function, alpha = choices[0] if len(choices) == 1 else choices[int(rng.random() < 0.5)]
    return function(clips, alpha, rng)


def mix_batch(clips, labels, num_classes, mixup_alpha, cutmix_alpha, rng):
    """(mixed clips, soft targets (batch, num_classes)), or None when both alphas are 0."""
    mixed = mix_clips(clips, mixup_alpha, cutmix_alpha, rng)
    if mixed is None:
        return None
    clips, perm, lam = mixed
    return clips, mixed_targets(labels, perm, lam, num_classes)
