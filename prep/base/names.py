"""Names that come from outside (split files, CSVs, archive and video file names, class names) are checked where
they enter: a name used as a path component must stay one component inside its folder."""
from prep.base.errors import UserError

FORBIDDEN = ("/", "\\", "\0", "\n", "\r")
# the datasets the project knows, in one place for prep (prep.datasets: one module each), the config schema (a test
# compares), common.smk and train's recipes (which may import only prep.base)
DATASET_NAMES = ("synthetic", "ucf101", "hmdb51", "kinetics400")


def safe_component(name, what):
    """``name`` if it can be one path component under its folder: not empty, not ``.`` or ``..``, without a path
    separator, NUL or line break (lists are one video a line); else UserError naming ``what``."""
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in FORBIDDEN):
        raise UserError(f"{what}: {name!r} cannot be a file or folder name")
    return name


def safe_relative(path, what):
    """``a/b/c`` if every component is :func:`safe_component` (``\\`` read as ``/``, as Windows-made lists have it)."""
    parts = str(path).replace("\\", "/").split("/")
    for part in parts:
        safe_component(part, what)
    return "/".join(parts)
