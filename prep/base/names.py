"""Names from outside are data: URL basenames, archive names and members, video file names, class names.

Each such name is checked where it enters (:func:`safe_component`, :func:`safe_relative`, or the ``*_problem``
functions where a caller reports rather than raises), so nothing derived from it can address a path outside its
folder or one of our own bookkeeping files. Our bookkeeping names all have one shape, made by :func:`bookkeeping`:
``.<name>.<kind>`` (hidden, a kind from :data:`BOOKKEEPING_KINDS`), plus ``NAME.part`` beside a download and the
reports a caller reserves (``missing.csv``).
"""
import hashlib
import re

from prep.base.errors import UserError

NAME_MAX = 255  # bytes in one path component (ext4, XFS, btrfs, tmpfs; os.pathconf(dir, "PC_NAME_MAX"))

# hidden names we create beside the files we make: download stamps, extraction work and markers, atomic temporaries,
# tree records (.tree.meta, prep.base.trees)
BOOKKEEPING_KINDS = ("verified", "partial", "extracted", "scratch", "lifted", "tmp", "meta")
PART_SUFFIX = ".part"  # a download in progress
_BOOKKEEPING = re.compile(r"^\..+\.(" + "|".join(BOOKKEEPING_KINDS) + r")$", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeNameError(UserError):
    """A name from outside that cannot be used as given."""


def name_bytes(name):
    return len(name.encode("utf-8", "surrogateescape"))


def fit(name, room=0):
    """``name`` if it and ``room`` more bytes fit in one path component (:data:`NAME_MAX`), else its beginning and a
    hash of the whole (``abc…~<16 hex>``): the same name always gives the same result, two names almost never one."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) + room <= NAME_MAX:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    keep = max(0, NAME_MAX - room - len(digest) - 1)
    return encoded[:keep].decode("utf-8", "ignore") + "~" + digest  # "ignore": no half character at the cut


def length_problem(name, suffix=""):
    """Why ``name`` + ``suffix`` cannot be one path component for its length (None when it can)."""
    size = name_bytes(name + suffix)
    if size <= NAME_MAX:
        return None
    with_suffix = f" with {suffix!r}" if suffix else ""
    return f"its name is {size} bytes{with_suffix}, over the file system's limit of {NAME_MAX} bytes per name"


def bookkeeping(name, kind):
    """The hidden name of our own file or folder of ``kind`` that belongs to ``name`` (``.UCF101.rar.partial``);
    a long ``name`` is shortened with a hash (:func:`fit`) so that the whole fits the file system."""
    assert kind in BOOKKEEPING_KINDS, kind
    return f".{fit(name, len(kind) + 2)}.{kind}"


def is_bookkeeping(name):
    """Whether a single path component has the shape of one of our bookkeeping names."""
    return bool(_BOOKKEEPING.match(name))


def printable(name):
    """A name for messages and reports: bytes that are not UTF-8 shown as ``\\xff`` (they arrive as surrogates)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


SHOWN_CHARS = 160  # the most of one outside name a message quotes: a message stays one readable line


def shown(name, limit=SHOWN_CHARS):
    """:func:`printable`, cut to ``limit`` characters for a message (a 256 MiB member name must not become a 256 MiB
    error line): ``abc…[+300000 chars]``."""
    text = printable(str(name))
    return text if len(text) <= limit else f"{text[:limit]}…[+{len(text) - limit} chars]"


def undecodable(name):
    """Whether a file name (str from the OS, surrogate-escaped) holds bytes that are not valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def component_problem(name):
    """Why ``name`` cannot be one path component of ours (None when it can): empty, ``.``/``..``, a separator,
    control characters (lists and reports are lines of text), bytes that are not UTF-8, or a bookkeeping name."""
    if name in ("", ".", ".."):
        return "not a usable name"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if undecodable(name):
        return "not valid UTF-8"
    if _CONTROL.search(name):
        return "holds control characters"
    if is_bookkeeping(name):
        return "has the form of our own bookkeeping names (.NAME.partial, .NAME.extracted, …)"
    return None


def safe_component(name, what):
    """``name`` if it can be one path component under its folder (see :func:`component_problem`), else a one-line
    :class:`UnsafeNameError` naming ``what``."""
    problem = component_problem(name) if isinstance(name, str) else "not a text"
    if problem is not None:
        raise UnsafeNameError(f"{what}: {printable(str(name))!r} cannot be a file or folder name ({problem})")
    return name


def safe_relative(path, what):
    """``a/b/c`` if every component is :func:`safe_component` (``\\`` read as ``/``, as Windows-made lists have it)."""
    parts = str(path).replace("\\", "/").split("/")
    for part in parts:
        safe_component(part, what)
    return "/".join(parts)


def download_name_problem(name, reserved=()):
    """Why ``name`` (a URL basename) cannot be saved under its own name in a downloads folder (None when it can):
    besides :func:`component_problem`, hidden names (our stamps and temporaries are hidden), ``*.part`` and the
    ``reserved`` names of the folder's reports would be taken for our own files."""
    problem = component_problem(name)
    if problem is not None:
        return problem
    if name.startswith("."):
        return "a hidden name (reserved for our stamps and temporaries)"
    if name.endswith(PART_SUFFIX):
        return f"ends in {PART_SUFFIX} (reserved for downloads in progress)"
    if name in reserved:
        return "reserved for our own report in the same folder"
    return length_problem(name, PART_SUFFIX)  # it is NAME.part while it comes


def member_problem(parts):
    """Why an archive member with path components ``parts`` (already free of ``..`` and absolute paths) cannot be
    extracted as named (None when it can). Hidden names such as ``.DS_Store`` are fine, and so are bytes that are
    not UTF-8 (the frame stages quarantine such videos); our bookkeeping names and control characters are not."""
    for part in parts:
        if _CONTROL.search(part):
            return "its name holds control characters"
        if is_bookkeeping(part):
            return "its name has the form of our own bookkeeping names (.NAME.partial, .NAME.extracted, …)"
    return None


def output_name_problem(video_id, suffix=""):
    """Why the outputs of a video id (``<id><suffix>``: ``.mp4``, ``.pack``, a folder) cannot be named on the file
    system (None when they can)."""
    parts = video_id.split("/")
    for part in parts[:-1]:
        problem = length_problem(part)
        if problem is not None:
            return f"its folder {shown(part, 40)!r}: {problem}"
    return length_problem(parts[-1], suffix)


def video_name_problem(video_id, suffix=""):
    """Why a video id (its relative path without extension) cannot go into our lists and reports, or its outputs
    onto the file system (:func:`output_name_problem`; None when it can): lists and reports are UTF-8 text, one
    video a line."""
    problem = output_name_problem(video_id, suffix)
    if problem is not None:
        return problem
    if undecodable(video_id):
        return "its file name is not valid UTF-8 (lists and reports are UTF-8 text)"
    if _CONTROL.search(video_id):
        return "its file name holds control characters (lists hold one video a line)"
    return None
