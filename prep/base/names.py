"""Names that come from outside (split files, CSVs, archive and video file names, class names) are checked where
they enter: a name used as a path component must stay one component inside its folder."""
from prep.base.errors import UserError

FORBIDDEN = ("/", "\\", "\0", "\n", "\r")


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
