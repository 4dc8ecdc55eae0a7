"""Disk full (ENOSPC) as a message a person can act on: which path, how much space is left, what to do."""
import errno
import os
import shutil
from pathlib import Path


def is_disk_full(error):
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def write_bytes(path, data):
    """``Path(path).write_bytes(data)``; a disk-full error names ``path`` (a failed write() alone does not)."""
    try:
        Path(path).write_bytes(data)
    except OSError as error:
        if is_disk_full(error) and not error.filename:
            raise OSError(error.errno, os.strerror(error.errno), str(path)) from None
        raise


def _free_bytes(path):
    """Free bytes on the file system holding ``path`` (its nearest existing parent), or None."""
    path = Path(path).absolute() if path else Path.cwd()
    for candidate in [path, *path.parents]:
        try:
            return str(candidate), shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None, None


def human(size):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def disk_full_message(error, path=None):
    """One line: what is full, where, and what to do."""
    path = path or getattr(error, "filename", None)
    where, free = _free_bytes(Path(path).parent if path else None)
    space = f"{human(free)} free on the file system of {where}" if free is not None else "free space unknown"
    target = f"writing {path}" if path else "writing an output file"
    return (f"disk full ({os.strerror(error.errno)}) while {target}; {space}. Free some space or move the "
            "output directory to a larger disk, then run the same command again (finished work is kept)")
