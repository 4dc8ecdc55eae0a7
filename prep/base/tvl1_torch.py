"""TV-L1 optical flow in torch: OpenCV contrib's ``DualTVL1OpticalFlow`` step for step, batched, on any device.

The algorithm and every default is opencv_contrib ``modules/optflow/src/tvl1flow.cpp`` (5.x, CPU path):
``calc`` builds the pyramid and upsamples the flow between scales, ``procOneScale`` warps and iterates. The
arithmetic follows the OpenCV build the project pins (:data:`REFERENCE_OPENCV`, x86-64 wheel with the IPP HAL),
because TV-L1 amplifies any rounding difference into visible flow differences (epsilon 0.011 instead of 0.01 moves
the flow by 0.1 px):

- ``resize`` INTER_LINEAR on float images runs in the IPP HAL (opencv ``hal/ipp/src/resize_ipp.cpp``): the source
  position is ``(d + 0.5)·step − 0.5`` in double (step = source/destination size, or 1/factor for the affine warp
  below), the blend ``fma(s1 − s0, w, s0)`` per axis, horizontal first.
  When the destination size is not exactly ``scale ×`` the source (the pyramid's rounded sizes) IPP warps affinely,
  and a position past the last source sample blends the last two samples with weight 1; otherwise (and always when
  upsampling to a given size) it takes the edge sample.
- ``remap`` INTER_CUBIC with float maps, border constant 0 (opencv ``imgwarp``, 5.x): the exact float coordinate,
  weights ``w0 = A·(x·(1−x)²)``, ``w1 = fma(fma(A+2, x, −(A+3)), x², 1)``, ``w3 = A·((1−x)·x²)``,
  ``w2 = 1 − w0 − w1 − w3`` (A = −0.75); taps summed by a chain of fused multiply-adds along each row, then the rows.
- Everything in ``tvl1flow.cpp`` itself is plain float arithmetic (compiled for SSE3, no FMA contraction): each
  float op below is one torch op, in the same order, never fused (no ``torch.compile``, ``addcmul`` or ``alpha=``).

A fused multiply-add is computed in double and rounded once to float (the product of two floats is exact in double).
The stopping rule is per pair, as each pair alone would run: a pair whose inner-loop error falls to
ε²·area keeps its flow while the others go on; it leaves the working set and is written back.
"""
from dataclasses import dataclass

import torch

from prep.base.tvl1_parameters import TVL1_PARAMETERS

#: The OpenCV build whose arithmetic this follows (``opencv-contrib-python-headless`` on x86-64); the fidelity test
#: names it when the installed OpenCV differs.
REFERENCE_OPENCV = "5.1.0"

CUBIC_A = -0.75
FLT_MAX = 3.4028234663852886e38
FLT_EPSILON = 1.1920928955078125e-07


_OPENCV = {field: default for _setter, field, _kind, default in TVL1_PARAMETERS.values()}


@dataclass(frozen=True)
class TVL1Parameters:
    """TV-L1's parameters, by default ``cv2.optflow.DualTVL1OpticalFlow_create()``'s (their one home:
    :data:`prep.base.optical_flow.TVL1_PARAMETERS`, which maps OpenCV's names to these fields)."""
    tau: float = _OPENCV["tau"]
    lambda_: float = _OPENCV["lambda_"]
    theta: float = _OPENCV["theta"]
    nscales: int = _OPENCV["nscales"]
    warps: int = _OPENCV["warps"]
    epsilon: float = _OPENCV["epsilon"]
    inner_iterations: int = _OPENCV["inner_iterations"]
    outer_iterations: int = _OPENCV["outer_iterations"]
    scale_step: float = _OPENCV["scale_step"]
    median_filtering: int = _OPENCV["median_filtering"]


DEFAULTS = TVL1Parameters()


def _f32(value):
    """A Python float rounded to float32, as ``static_cast<float>`` does."""
    return torch.tensor(value, dtype=torch.float64).float().item()


def _fma(a, b, c):
    """fma(a, b, c) of float32 tensors: exact product and sum in double, one rounding to float32."""
    return (a.double() * b.double() + c.double()).float()


def pyramid_sizes(height, width, params=DEFAULTS):
    """(height, width) of each scale, finest first, as ``calc`` builds them: ``cvRound(n·0.8)`` of the previous
    scale, stopping before the first scale with fewer than 16 rows or columns."""
    sizes = [(height, width)]
    for _ in range(1, params.nscales):
        h, w = sizes[-1]
        # saturate_cast<int>(double) rounds half to even (cvRound); Python's round does the same
        nh, nw = round(h * params.scale_step), round(w * params.scale_step)
        if nw < 16 or nh < 16:
            break
        sizes.append((nh, nw))
    return sizes


def _linear_taps(n_dst, n_src, scale, affine, device):
    """Source indices i0, i1 and float32 weight of i1 for each destination sample of one axis."""
    position = (torch.arange(n_dst, dtype=torch.float64, device=device) + 0.5) * scale - 0.5
    base = torch.floor(position)
    fraction = position - base
    index = base.long()
    before = index < 0
    index = torch.where(before, 0, index)
    fraction = torch.where(before, 0.0, fraction)
    past = index >= n_src - 1
    if affine and n_src > 1:
        # IPP's affine warp blends the last two samples with weight 1 past the last one
        index = torch.where(past, n_src - 2, index)
        fraction = torch.where(past, 1.0, fraction)
    else:
        index = torch.where(past, n_src - 1, index)
        fraction = torch.where(past, 0.0, fraction)
    return index, torch.clamp(index + 1, max=n_src - 1), fraction.float()


def resize_linear(images, size, scale=None):
    """``cv2.resize(img, dsize or None, fx=scale, fy=scale, INTER_LINEAR)`` of float32 ``images`` (..., H, W) as the
    IPP HAL computes it. ``size`` is (height, width); ``scale`` the requested factor (``fx``), or None when only the
    size is given (then the factor is the size ratio)."""
    height, width = images.shape[-2:]
    out_h, out_w = size
    inv_x = scale if scale is not None else out_w / width
    inv_y = scale if scale is not None else out_h / height
    # resize_ipp.cpp: an affine warp when the size is not exactly the factor times the source
    affine = (abs(out_w / width - inv_x) / inv_x > 1e-10) or (abs(out_h / height - inv_y) / inv_y > 1e-10)
    # the affine warp steps by 1/factor, the plain resize by source/destination size (not 1/(dst/src): positions
    # that are whole numbers in exact arithmetic land on either side of them)
    step_x, step_y = (1.0 / inv_x, 1.0 / inv_y) if affine else (width / out_w, height / out_h)
    x0, x1, wx = _linear_taps(out_w, width, step_x, affine, images.device)
    y0, y1, wy = _linear_taps(out_h, height, step_y, affine, images.device)
    left, right = images[..., x0], images[..., x1]
    rows = _fma(right - left, wx, left)
    top, bottom = rows[..., y0, :], rows[..., y1, :]
    return _fma(bottom - top, wy[:, None], top)


def _cubic_weights(fraction):
    """The four cubic-convolution weights (A = −0.75) of each fractional coordinate, as OpenCV 5.x's remap builds
    them (see the module docstring)."""
    a = _f32(CUBIC_A)
    x2 = fraction * fraction
    rest = 1.0 - fraction
    w0 = a * (fraction * (rest * rest))
    w1 = _fma(_fma(torch.full_like(fraction, a + 2.0), fraction, torch.full_like(fraction, -(a + 3.0))), x2,
              torch.ones_like(fraction))
    w3 = a * (rest * x2)
    w2 = ((1.0 - w0) - w1) - w3
    return w0, w1, w2, w3


def remap_cubic(images, map_x, map_y):
    """``cv2.remap(img, map_x, map_y, INTER_CUBIC)`` (border constant 0) of float32 ``images`` (B, C, H, W) with
    float32 maps (B, H, W); the C channels share the maps."""
    batch, channels, height, width = images.shape
    base_x, base_y = torch.floor(map_x), torch.floor(map_y)
    wx = _cubic_weights(map_x - base_x)
    wy = _cubic_weights(map_y - base_y)
    # beyond int range the coordinate is far outside anyway: clamp before the cast
    ix = base_x.clamp(-4.0, width + 4.0).long()
    iy = base_y.clamp(-4.0, height + 4.0).long()
    flat = images.reshape(batch, channels, height * width)
    result = None
    for r in range(4):
        row_y = iy + (r - 1)
        inside_y = (row_y >= 0) & (row_y < height)
        row_value = None
        for c in range(4):
            col_x = ix + (c - 1)
            inside = inside_y & (col_x >= 0) & (col_x < width)
            index = (row_y.clamp(0, height - 1) * width + col_x.clamp(0, width - 1)).reshape(batch, 1, -1)
            tap = torch.gather(flat, 2, index.expand(batch, channels, -1)).reshape(batch, channels, height, width)
            tap = torch.where(inside[:, None], tap, 0.0)
            weight = wx[c][:, None]
            row_value = weight * tap if row_value is None else _fma(weight, tap, row_value)
        weight = wy[r][:, None]
        result = weight * row_value if result is None else _fma(weight, row_value, result)
    return result


def _median_network(inputs=25, width=32):
    """Compare-exchange pairs (i, j) that leave the median of ``inputs`` values on wire ``inputs // 2``: Batcher's
    odd-even merge sort of ``width`` wires, the padding wires (+inf) and every comparator the median does not
    depend on removed (113 of them for 25 values)."""
    comparators, p = [], 1
    while p < width:
        k = p
        while k >= 1:
            for j in range(k % p, width - k, 2 * k):
                for i in range(min(k, width - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        comparators.append((i + j, i + j + k))
            k //= 2
        p *= 2
    # a comparator with +inf below leaves both wires as they are; inputs < width fill the low wires, so +inf never
    # reaches a low wire of a comparator whose high wire holds a value
    real = [(a, b) for a, b in comparators if b < inputs]
    needed, kept = {inputs // 2}, []
    for a, b in reversed(real):
        if a in needed or b in needed:
            kept.append((a, b))
            needed |= {a, b}
    return kept[::-1]


_MEDIAN_25 = _median_network()


def median_blur5(flow):
    """``cv2.medianBlur(u, 5)`` of float32 (B, H, W): the exact median of each 5×5 window, border replicated (a
    selection network of min/max: exact, and elementwise on any device)."""
    height, width = flow.shape[-2:]
    padded = torch.nn.functional.pad(flow[:, None], (2, 2, 2, 2), mode="replicate")[:, 0]
    wires = [padded[:, i:i + height, j:j + width] for i in range(5) for j in range(5)]
    for a, b in _MEDIAN_25:
        wires[a], wires[b] = torch.minimum(wires[a], wires[b]), torch.maximum(wires[a], wires[b])
    return wires[12]


def centered_gradient(image):
    """tvl1flow.cpp ``centeredGradient``: 0.5·(next − previous) inside, one-sided 0.5·difference at the edges."""
    dx = torch.empty_like(image)
    dy = torch.empty_like(image)
    dx[..., 1:-1] = 0.5 * (image[..., 2:] - image[..., :-2])
    dx[..., 0] = 0.5 * (image[..., 1] - image[..., 0])
    dx[..., -1] = 0.5 * (image[..., -1] - image[..., -2])
    dy[..., 1:-1, :] = 0.5 * (image[..., 2:, :] - image[..., :-2, :])
    dy[..., 0, :] = 0.5 * (image[..., 1, :] - image[..., 0, :])
    dy[..., -1, :] = 0.5 * (image[..., -1, :] - image[..., -2, :])
    return dx, dy


def forward_gradient(field):
    """tvl1flow.cpp ``forwardGradient``: next − this, 0 on the last column (dx) and last row (dy)."""
    dx = torch.zeros_like(field)
    dy = torch.zeros_like(field)
    dx[..., :-1] = field[..., 1:] - field[..., :-1]
    dy[..., :-1, :] = field[..., 1:, :] - field[..., :-1, :]
    return dx, dy


def divergence(v1, v2):
    """tvl1flow.cpp ``divergence`` (backward differences), with its first row, first column and corner forms."""
    div = torch.empty_like(v1)
    div[..., 1:, 1:] = (v1[..., 1:, 1:] - v1[..., 1:, :-1]) + (v2[..., 1:, 1:] - v2[..., :-1, 1:])
    div[..., 0, 1:] = (v1[..., 0, 1:] - v1[..., 0, :-1]) + v2[..., 0, 1:]
    div[..., 1:, 0] = (v1[..., 1:, 0] + v2[..., 1:, 0]) - v2[..., :-1, 0]
    div[..., 0, 0] = v1[..., 0, 0] + v2[..., 0, 0]
    return div


class _Iterates:
    """The flow (u1, u2) and dual variables (p11, p12, p21, p22) of a set of pairs at one scale."""

    def __init__(self, fields):
        self.fields = list(fields)

    def take(self, rows):
        return _Iterates(value[rows] for value in self.fields)

    def put(self, rows, other):
        for target, value in zip(self.fields, other.fields):
            target[rows] = value

    def keep_where(self, mask, other):
        """Per pair: this iterate where ``mask``, else ``other``'s."""
        self.fields = [torch.where(mask[:, None, None], new, old) for new, old in zip(self.fields, other.fields)]


def _warp_terms(I1wx, I1wy, grad, rho_c, lambda_theta):
    """What estimateV uses that stays fixed through a warp's iterations, computed once (the same float values)."""
    return (I1wx, I1wy, grad, rho_c, lambda_theta * I1wx, lambda_theta * I1wy, lambda_theta * grad,
            grad > FLT_EPSILON)


def _estimate_v(u1, u2, terms):
    """tvl1flow.cpp ``estimateV``: the thresholding step."""
    I1wx, I1wy, grad, rho_c, step_x, step_y, bound, usable = terms
    rho = rho_c + (I1wx * u1 + I1wy * u2)
    fi = -rho / grad
    d1 = torch.where(usable, fi * I1wx, 0.0)
    d2 = torch.where(usable, fi * I1wy, 0.0)
    below, above = rho < -bound, rho > bound  # -(l_t·grad) is (-l_t)·grad exactly: negation does not round
    d1 = torch.where(below, step_x, torch.where(above, -step_x, d1))
    d2 = torch.where(below, step_y, torch.where(above, -step_y, d2))
    return u1 + d1, u2 + d2


def _dual_step(p1, p2, ux, uy, tau_theta):
    """tvl1flow.cpp ``estimateDualVariables`` for one flow component."""
    norm = 1.0 + tau_theta * torch.hypot(ux, uy)
    return (p1 + tau_theta * ux) / norm, (p2 + tau_theta * uy) / norm


def _inner_step(iterates, warped, constants):
    """One inner iteration (estimateV, divergence, estimateU, forwardGradient, estimateDualVariables) of every pair
    in ``iterates``; returns the new iterates and each pair's error (float64)."""
    u1, u2, p11, p12, p21, p22 = iterates.fields
    tau_theta, theta = constants
    v1, v2 = _estimate_v(u1, u2, warped)
    new_u1 = v1 + theta * divergence(p11, p12)
    new_u2 = v2 + theta * divergence(p21, p22)
    # each pixel's term as estimateU computes it (float); the stopping test's sum order does not change the flow
    # (measured), and summing in double keeps it close to exact
    du1, du2 = new_u1 - u1, new_u2 - u2
    error = (du1 * du1 + du2 * du2).double().sum(dim=(-2, -1))
    u1x, u1y = forward_gradient(new_u1)
    u2x, u2y = forward_gradient(new_u2)
    p11, p12 = _dual_step(p11, p12, u1x, u1y, tau_theta)
    p21, p22 = _dual_step(p21, p22, u2x, u2y, tau_theta)
    return _Iterates([new_u1, new_u2, p11, p12, p21, p22]), error


def _iterate_warp(iterates, warped, constants, scaled_epsilon, params, check_every):
    """The outer × inner loops of one warp. Every pair starts (error = FLT_MAX) and leaves the working set once its
    error is at most ``scaled_epsilon``, keeping the iterate of the iteration that met the rule, as it would alone.
    The host looks at which pairs finished every ``check_every`` inner iterations (a device sync on a GPU) and at the
    end of each inner loop; in between, finished pairs are held by a mask."""
    batch = iterates.fields[0].shape[0]
    device = iterates.fields[0].device
    members = torch.arange(batch, device=device)
    work = iterates.take(members)
    error = torch.full((batch,), FLT_MAX, dtype=torch.float64, device=device)
    for _outer in range(params.outer_iterations):
        if params.median_filtering > 1:  # every member is running here: the last inner iteration checked
            work.fields[0] = median_blur5(work.fields[0])
            work.fields[1] = median_blur5(work.fields[1])
        for inner in range(params.inner_iterations):
            running = error > scaled_epsilon
            stepped, new_error = _inner_step(work, warped, constants)
            if check_every > 1:
                stepped.keep_where(running, work)
                new_error = torch.where(running, new_error, error)
            work, error = stepped, new_error
            if (inner + 1) % check_every and inner + 1 < params.inner_iterations:
                continue
            active = error > scaled_epsilon
            if bool(active.all()):
                continue
            iterates.put(members, work)
            keep = active.nonzero().squeeze(1)
            members, error = members[keep], error[keep]
            work = work.take(keep)
            warped = tuple(value[keep] for value in warped)
            if members.numel() == 0:
                return
    iterates.put(members, work)


def _one_scale(I0, I1, u1, u2, params, check_every):
    """tvl1flow.cpp ``procOneScale`` for a batch of pairs at one scale, from the initial flow (u1, u2)."""
    batch, height, width = I0.shape
    scaled_epsilon = _f32(params.epsilon * params.epsilon * height * width)
    lambda_theta = _f32(params.lambda_ * params.theta)
    constants = (_f32(params.tau / params.theta), _f32(params.theta))
    I1x, I1y = centered_gradient(I1)
    gradients = torch.stack([I1, I1x, I1y], dim=1)
    xs = torch.arange(width, dtype=torch.float32, device=I0.device)
    ys = torch.arange(height, dtype=torch.float32, device=I0.device)[:, None]
    zeros = torch.zeros_like(u1)
    iterates = _Iterates([u1.clone(), u2.clone(), zeros, zeros.clone(), zeros.clone(), zeros.clone()])
    for _ in range(params.warps):
        u1, u2 = iterates.fields[:2]
        I1w, I1wx, I1wy = remap_cubic(gradients, xs + u1, ys + u2).unbind(1)
        grad = I1wx * I1wx + I1wy * I1wy
        rho_c = ((I1w - I1wx * u1) - I1wy * u2) - I0
        _iterate_warp(iterates, _warp_terms(I1wx, I1wy, grad, rho_c, lambda_theta), constants, scaled_epsilon,
                      params, check_every)
    return iterates.fields[0], iterates.fields[1]


def tvl1_batch(previous, following, params=DEFAULTS, check_every=None):
    """TV-L1 flow from ``previous`` to ``following``: (B, H, W) grayscale uint8 (or float 0–255) tensors on one
    device → (B, H, W, 2) float32, each pair exactly as OpenCV computes it alone.

    ``check_every`` (default 1 on the CPU, 10 on a GPU) is how many inner iterations pass between the host's looks at
    which pairs have converged."""
    if previous.shape != following.shape or previous.dim() != 3:
        raise ValueError(f"frame pairs must be two (B, H, W) tensors of one shape, got {tuple(previous.shape)} "
                         f"and {tuple(following.shape)}")
    if params.median_filtering not in (0, 1, 5):
        raise ValueError(f"median_filtering {params.median_filtering}: only OpenCV's default 5 (or off) is written")
    if check_every is None:
        check_every = 1 if previous.device.type == "cpu" else 10
    sizes = pyramid_sizes(*previous.shape[1:], params)
    I0s, I1s = [previous.float()], [following.float()]
    for size in sizes[1:]:
        I0s.append(resize_linear(I0s[-1], size, params.scale_step))
        I1s.append(resize_linear(I1s[-1], size, params.scale_step))
    u1 = torch.zeros_like(I0s[-1])
    u2 = torch.zeros_like(I0s[-1])
    inverse_step = _f32(1.0 / params.scale_step)
    for s in range(len(sizes) - 1, -1, -1):
        u1, u2 = _one_scale(I0s[s], I1s[s], u1, u2, params, check_every)
        if s:
            u1 = resize_linear(u1, sizes[s - 1]) * inverse_step
            u2 = resize_linear(u2, sizes[s - 1]) * inverse_step
    return torch.stack([u1, u2], dim=-1)
