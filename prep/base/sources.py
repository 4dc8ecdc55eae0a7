"""Where a dataset's files come from, as the user writes it: URL lists, checksums, local paths, the sources file of
``prep fetch``, and the search for a dataset's folders in extracted archives or a copy on disk.

One reader each: :func:`read_url_list` (``prep download``'s list and PaddleVideo's ``train_link.list``),
:func:`read_checksums` (sha256sum / md5sum / BSD output) and :func:`checksums_from_config` (the config's
``checksums:`` mapping) share :func:`parse_digest`.
"""
import json
import os
import re
from pathlib import Path
from urllib.parse import urlparse

from prep.base.errors import UserError

HASH_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
URL_SCHEMES = ("http", "https", "ftp", "file")
SOURCES_KEYS = ("dataset", "archives", "trees", "files", "failed")  # the JSON `prep fetch` writes
MAX_DEPTH = 4


def as_list(value):
    """A config value that may be one string, a list of them, or null → a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(v) for v in value]


def is_url(text):
    return "://" in text and text.split("://", 1)[0].lower() in URL_SCHEMES


def read_url_list(path):
    """URLs of a list file, one a line (blank lines and # comments ignored); a line that is not a URL with a path
    is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: URL list not found")
    urls = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parsed = urlparse(line)
        if parsed.scheme.lower() not in URL_SCHEMES or not parsed.path.strip("/"):
            raise UserError(f"{path}: line {number}: {line!r} is not a file URL ({'/'.join(URL_SCHEMES)})")
        urls.append(line)
    return urls


def parse_digest(digest, where):
    """``(algorithm, hex)`` of an md5/sha1/sha256/sha512 hex digest (``sha256:`` prefix allowed), or UserError."""
    digest = str(digest).strip().lower()
    if ":" in digest:
        digest = digest.split(":", 1)[1]
    algo = HASH_BY_LENGTH.get(len(digest))
    if algo is None or not re.fullmatch(r"[0-9a-f]+", digest):
        raise UserError(f"{where}: {digest!r} is not an md5/sha1/sha256/sha512 hex digest")
    return algo, digest


def _file_name(name):
    """Checksums are matched by file name: the last component of what the line or key says."""
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def read_checksums(path):
    """``{file name: (algorithm, hex digest)}`` from sha256sum / md5sum (or BSD ``SHA256 (name) = hash``) output."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checksum file not found")
    checksums = {}
    bsd = re.compile(r"^(\w+) \((.+)\) = ([0-9a-fA-F]+)$")
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = bsd.match(line)
        if match:
            digest, name = match.group(3), match.group(2)
        else:
            digest, _, name = line.partition(" ")
            name = name.strip().removeprefix("*")  # binary-mode marker of sha256sum -b
        if not name:
            raise UserError(f"{path}: line {number}: expected 'HASH  NAME', got {line!r}")
        checksums[_file_name(name)] = parse_digest(digest, f"{path}: line {number}")
    return checksums


def checksums_from_config(mapping, where="checksums"):
    """The config's ``{name: hex}`` → ``{file name: (algorithm, hex)}``, as :func:`read_checksums` gives them."""
    return {_file_name(name): parse_digest(digest, f"{where}: {name!r}") for name, digest in (mapping or {}).items()}


def read_sources(path):
    """The sources file ``prep fetch`` wrote: ``{"dataset", "archives", "trees", "files", "failed"}``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a sources file from `prep fetch` ({error})") from None
    for key in SOURCES_KEYS:
        if key not in data:
            raise UserError(f"{path}: not a sources file from `prep fetch` (no {key!r})")
    return data


# --- directory search: a dataset's folders in extracted archives or a copy on disk --------------------------------


def walk_dirs(roots, max_depth=MAX_DEPTH):
    """Every directory under roots (roots included), breadth first, at most max_depth levels down."""
    level = [Path(r) for r in roots if Path(r).is_dir()]
    for _depth in range(max_depth + 1):
        following = []
        for folder in level:
            yield folder
            try:
                with os.scandir(folder) as entries:
                    following += sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
            except OSError:
                continue
        level = following


def _has_video(folder, extensions):
    try:
        with os.scandir(folder) as entries:
            return any(e.is_file() and e.name.lower().endswith(extensions) for e in entries)
    except OSError:
        return False


def best_class_tree(roots, extensions, classes, dataset):
    """The folder under roots with the most sub-folders named after a class (case-insensitively) holding videos."""
    wanted = {c.lower() for c in classes}
    best, best_count = None, 0
    for folder in walk_dirs(roots):
        try:
            with os.scandir(folder) as entries:
                subdirs = [e.path for e in entries if e.is_dir() and e.name.lower() in wanted]
        except OSError:
            continue
        count = sum(_has_video(d, extensions) for d in subdirs)
        if count > best_count:
            best, best_count = folder, count
    if best is None:
        raise UserError(f"{dataset}: no folder of class folders with {'/'.join(extensions)} videos found under "
                        f"{', '.join(map(str, roots)) or 'nothing'}")
    return best
