"""A tree says how it was made: ``ROOT/.tree.meta``, a small JSON record at the root of a frames, flow or videos tree.

    {"tool": "actionflow 0.1.0",
     "rgb":  {"stage": "frames", "storage": "frames", "naming": "mmaction",
              "frame_size": {"short_side": null, "size": null}, "quality": 95},
     "flow": {"stage": "flow", "storage": "packs", "naming": "mmaction", "algorithm": "tvl1", "backend": "opencv",
              "bound": 20.0, "frame_size": {"short_side": null, "size": null}, "quality": 95}}

A flow tree whose TV-L1 parameters differ from OpenCV's defaults records those too: ``"parameters": {"epsilon": 0.05}``.

One section per modality the tree holds: a frames tree (``prep frames``) or a videos tree (``prep reencode``) has
``rgb``, a flow tree (``prep flow``) ``flow``, and flow written beside its frames (OUT == SRC) both. The stage that
makes a tree writes its section before its first video, atomically (every shard writes the same one); a run whose
settings differ from a section already there is an error naming both, so a tree never mixes two conventions.

Readers — the flow stage reading frames, the lists, the gate, training, evaluation, the report and predict — take the
conventions from here (:func:`tree_conventions`): a flag that agrees is fine, one that contradicts the record is an
error naming both, and a tree made by other tools (no record) takes the flags, else the defaults.
"""
import json
from importlib import metadata
from pathlib import Path

from prep.base.atomic import atomic_file, temporary_prefix
from prep.base.errors import UserError
from prep.base.names import bookkeeping
from prep.base.optical_flow import FLOW_BOUND

TREE_RECORD = bookkeeping("tree", "meta")  # .tree.meta: a bookkeeping name, so no archive member or video takes it
MODALITIES = ("rgb", "flow")
DEFAULT_FLOW_BACKEND = "opencv"
# what a tree without a record is taken to be (flags override): the conventions of mmaction2's tools
DEFAULTS = {"rgb": {"naming": "mmaction"},
            "flow": {"naming": "mmaction", "algorithm": "tvl1", "backend": DEFAULT_FLOW_BACKEND, "bound": FLOW_BOUND,
                     "parameters": {}}}
# the settings a reader may state as flags (the others — stage, quality — are kept for the record)
FLAG_NAMES = {"naming": "--naming", "flow_naming": "--flow-naming", "storage": "--storage",
              "algorithm": "--algorithm", "backend": "--backend", "bound": "--bound"}


def tool_version():
    try:
        return f"actionflow {metadata.version('actionflow')}"
    except metadata.PackageNotFoundError:  # run from a checkout without installing it
        return "actionflow (not installed)"


def frame_size(short_side=None, size=None):
    """How frames were sized: ``{"short_side": n or None, "size": "WxH" or None}`` (both None: as decoded)."""
    if size is not None and not isinstance(size, str):
        size = f"{size[0]}x{size[1]}"
    return {"short_side": short_side, "size": size}


def rgb_record(stage, storage, naming, short_side=None, size=None, **quality):
    """The ``rgb`` section a frames (``storage`` frames / packs) or videos tree records; ``quality``: ``quality=``
    (JPEG) or ``crf=`` (x264)."""
    return {"stage": stage, "storage": storage, "naming": naming, "frame_size": frame_size(short_side, size),
            **quality}


def flow_record(storage, naming, algorithm, bound, quality, short_side=None, size=None,
                backend=DEFAULT_FLOW_BACKEND, parameters=None):
    """The ``flow`` section a flow tree records: the one function ``prep flow`` writes it through, with the
    estimator's ``algorithm``, the TV-L1 ``parameters`` that differ from OpenCV's defaults (kept out when none do,
    as trees recorded before they could), ``backend`` and the quantization ``bound``."""
    return {"stage": "flow", "storage": storage, "naming": naming, "algorithm": algorithm, "backend": backend,
            "bound": float(bound), "frame_size": frame_size(short_side, size), "quality": quality,
            **({"parameters": dict(parameters)} if parameters else {})}


def read_tree(root):
    """The record of the tree at ``root`` (a dict), or None when it has none (made by other tools, or not yet)."""
    path = Path(root) / TREE_RECORD
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        raise UserError(f"{path}: not a tree record (JSON); remove it and rerun the stage that made the tree") from None
    if not isinstance(record, dict) or not all(isinstance(record.get(m, {}), dict) for m in MODALITIES):
        raise UserError(f"{path}: not a tree record (an object with 'rgb' / 'flow' sections)")
    return record


def _same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _differences(recorded, wanted):
    return [key for key in sorted(set(recorded) | set(wanted)) if not _same(recorded.get(key), wanted.get(key))]


def _describe(section, keys):
    return ", ".join(f"{key} {json.dumps(section.get(key))}" for key in keys)


def record_tree(root, modality, section, replace=False):
    """Record how ``modality``'s files under ``root`` are made (before the first is written). A section already
    there must be the same: otherwise a UserError naming both (a rerun with other settings would mix two) — unless
    ``replace``: a stage that redoes every file made otherwise (``prep reencode``) records its settings anew."""
    root = Path(root)
    path = root / TREE_RECORD
    current = read_tree(root) or {}
    known = current.get(modality)
    if known is not None and replace and known != section:
        known = None
    if known is not None:
        differ = [key for key in _differences(known, section) if key != "stage"]
        if differ:
            raise UserError(f"{path}: the {modality} files there were made with {_describe(known, differ)}; this run "
                            f"has {_describe(section, differ)}: write to another folder, or remove {root} first")
        return path
    root.mkdir(parents=True, exist_ok=True)
    # a run killed while writing the record left its temporary: the rerun removes it (a shard starting at the same
    # moment may lose its own to this, and then simply writes the same record again)
    for stale in root.glob(temporary_prefix(TREE_RECORD) + "*.tmp"):
        stale.unlink(missing_ok=True)
    text = json.dumps({**current, "tool": tool_version(), modality: section}, indent=1, sort_keys=True) + "\n"
    for attempt in range(3):
        try:
            with atomic_file(path, sync=False) as handle:
                handle.write(text)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    return path


def tree_conventions(root, modality, **flags):
    """The conventions of ``modality``'s files under ``root``: its record's section over :data:`DEFAULTS`; ``flags``
    (``naming=``, ``bound=``, … ; None = not given) fill in what a tree without a record cannot say. A flag that
    contradicts the record is a UserError naming both."""
    return conventions((read_tree(root) or {}).get(modality), modality, Path(root) / TREE_RECORD, **flags)


def conventions(section, modality, where, **flags):
    """:func:`tree_conventions` of a record's ``section`` (None: no record) kept at ``where`` (for messages)."""
    result = dict(DEFAULTS[modality])
    if section:
        result.update({key: value for key, value in section.items() if value is not None})
    for key, value in flags.items():
        if value is None:
            continue
        if section and section.get(key) is not None and not _same(section[key], value):
            raise UserError(f"{FLAG_NAMES.get(key, key)} {value} contradicts {where}: its {modality} files were made "
                            f"with {key} {section[key]} (leave the flag out)")
        result[key] = value
    return result


def find_tree_root(path, levels=3):
    """The nearest folder at or above ``path`` (up to ``levels`` up) holding a tree record, or None: where a
    single video's frames (``root/[class/]video``) take their conventions from."""
    path = Path(path).absolute()
    for folder in [path, *path.parents][:levels + 1]:
        if (folder / TREE_RECORD).is_file():
            return folder
    return None


# what a model depends on: the flow's values (the file names and storage only say where they are; the backends are
# twins, bit-exact with each other, so which one computed a tree does not matter to a model)
CONTENT = ("algorithm", "parameters", "bound")


def agree(modality, recorded, found, what_recorded, what_found, keys=CONTENT):
    """Two records of conventions (the tree a model was trained on and the tree it reads; a manifest's and its
    tree's) must agree on ``keys`` where both state them: a UserError naming both otherwise."""
    keys = [key for key in keys
            if recorded.get(key) is not None and found.get(key) is not None and not _same(recorded[key], found[key])]
    if keys:
        raise UserError(f"{what_recorded} says the {modality} files have {_describe(recorded, keys)}, but "
                        f"{what_found} says {_describe(found, keys)}")


def recorded_section(root, modality):
    """The ``modality`` section of the record at ``root``, or None (no record, or none for that modality)."""
    return (read_tree(root) or {}).get(modality) if root is not None else None


def tree_namings(frames_root, flow_root, naming=None, flow_naming=None):
    """``(rgb naming, flow naming)`` of a frames tree and a flow tree (one folder when flow sits beside the frames):
    their records' names; for a tree without a record the flag, else mmaction (flow: as the rgb). A flag that
    contradicts a record is a UserError naming both."""
    rgb = tree_conventions(frames_root, "rgb", naming=naming)["naming"] if frames_root else naming or "mmaction"
    if recorded_section(flow_root, "flow") is not None:
        return rgb, tree_conventions(flow_root, "flow", naming=flow_naming)["naming"]
    return rgb, flow_naming or rgb
