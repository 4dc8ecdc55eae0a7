"""TV-L1's parameters by OpenCV's names: their defaults (one home), and the check that makes a user's or a
dataset's changes canonical. No torch or OpenCV here: the Snakefile checks config ``flow.tvl1`` at load time, and
both backends (:mod:`prep.base.optical_flow`, :mod:`prep.base.tvl1_torch`) take their parameters from here."""
import math

from prep.base.errors import UserError

# TV-L1's parameters: name → (OpenCV setter, the torch twin's field, type, OpenCV's default: tvl1flow.cpp
# OpticalFlowDual_TVL1(), what DualTVL1OpticalFlow_create() gives). A dataset or user may change them by these names;
# a tree records the ones that differ (e.g. the synthetic dataset's 64-pixel frames run TV-L1 to its iteration cap at
# epsilon 0.01: prep.datasets.synthetic).
TVL1_PARAMETERS = {
    "tau": ("setTau", "tau", float, 0.25),
    "lambda": ("setLambda", "lambda_", float, 0.15),
    "theta": ("setTheta", "theta", float, 0.3),
    "scales": ("setScalesNumber", "nscales", int, 5),
    "warps": ("setWarpingsNumber", "warps", int, 5),
    "epsilon": ("setEpsilon", "epsilon", float, 0.01),
    "inner_iterations": ("setInnerIterations", "inner_iterations", int, 30),
    "outer_iterations": ("setOuterIterations", "outer_iterations", int, 10),
    "scale_step": ("setScaleStep", "scale_step", float, 0.8),
    "median_filtering": ("setMedianFiltering", "median_filtering", int, 5),
}


def flow_parameters(algorithm, parameters, where="flow parameters"):
    """``parameters`` (a mapping, or None) checked for ``algorithm`` and made canonical: ``{name: value}`` of those
    that differ from OpenCV's defaults, sorted by name, ints and floats as :data:`TVL1_PARAMETERS` says. A UserError
    names ``where`` and the key at fault."""
    if not parameters:
        return {}
    if algorithm != "tvl1":
        raise UserError(f"{where}: parameters apply to tvl1 only, not {algorithm!r}")
    checked = {}
    for name, value in sorted(dict(parameters).items()):
        if name not in TVL1_PARAMETERS:
            raise UserError(f"{where}: unknown TV-L1 parameter {name!r} (known: {', '.join(TVL1_PARAMETERS)})")
        kind = TVL1_PARAMETERS[name][2]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (kind is int and value != int(value)):
            raise UserError(f"{where}: TV-L1 {name} must be {'a whole number' if kind is int else 'a number'}, "
                            f"not {value!r}")
        value = kind(value)
        if name == "median_filtering" and value not in (0, 1, 5):
            raise UserError(f"{where}: TV-L1 median_filtering {value}: 5 (OpenCV's default) or 0/1 (off)")
        if name != "median_filtering" and not value > 0 or name == "scale_step" and not value < 1:
            upper = ", < 1" if name == "scale_step" else ""
            raise UserError(f"{where}: TV-L1 {name} {value} out of range (> 0{upper})")
        if value != TVL1_PARAMETERS[name][3]:
            checked[name] = value
    return checked


def parse_parameters(text):
    """``KEY=VALUE[,KEY=VALUE…]`` (the ``--tvl1`` flag) → ``{key: number}``, checked by :func:`flow_parameters`."""
    parameters = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        try:
            parameters[key.strip()] = float(value)
        except ValueError:
            parameters[key.strip()] = value.strip()  # refused below, by name
    return flow_parameters("tvl1", parameters, where=repr(text))
