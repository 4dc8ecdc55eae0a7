"""Write-then-rename helpers: a partial output never stands under its final name."""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from prep.base.names import fit

# bytes a temporary's name adds to the name it stands in for: ".", ".", mkstemp's 8 random characters, a suffix
# (up to 14 bytes) and ".tmp"; a longer name is shortened with a hash (prep.base.names.fit), so that a video or
# file whose own name fits the file system always gets a temporary too
TMP_ROOM = 28


def temporary_prefix(name):
    """``.NAME.`` — the start of the name of every temporary standing in for ``name``."""
    return f".{fit(name, TMP_ROOM)}."


def temporary_sibling(path, suffix=""):
    """A fresh temporary path next to ``path`` (same file system, so rename is atomic); hidden from globs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert len(suffix) <= 14, suffix
    return Path(tempfile.mkdtemp(prefix=temporary_prefix(path.name), suffix=f"{suffix}.tmp", dir=path.parent))


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary directory that is renamed to ``path`` when the block ends without error.

    On error the temporary directory is removed. ``path`` must not exist (callers decide whether to skip or replace).
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path, mode="w", sync=True, **kwargs):
    """Open a temporary file beside ``path``; on success it is flushed, synced (unless ``sync=False``: safe against
    a killed process, not against a power cut — as the frame directories) and renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def temporary_target(name):
    """The name a temporary from :func:`temporary_sibling` / :func:`atomic_file` stands in for (``.NAME.RANDOM.tmp``,
    RANDOM without dots; NAME as :func:`prep.base.names.fit` shortened it), or None for other names."""
    if not (name.startswith(".") and name.endswith(".tmp")) or name.count(".") < 3:
        return None
    return name[1:-4].rsplit(".", 1)[0]


def remove_stale_temporaries(directory, names=None):
    """Delete temporaries a killed run left in ``directory`` (``.name.*.tmp``) — only those standing in for
    ``names`` if given: shards running side by side share directories, and each owns only its videos' temporaries."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    wanted = None if names is None else {fit(n, TMP_ROOM) for n in names}
    stale = [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")
             and (wanted is None or temporary_target(p.name) in wanted)]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return len(stale)


def remove_own_temporaries(out_root, video_ids, suffix=""):
    """What a killed run left for these videos (never another shard's work in progress in the same directory)."""
    by_parent = {}
    for vid in video_ids:
        path = Path(out_root) / f"{vid}{suffix}"
        by_parent.setdefault(path.parent, set()).add(path.name)
    for parent, names in by_parent.items():
        remove_stale_temporaries(parent, names)
