"""Safe, atomic extraction of zip / tar (plain, gz, bz2, xz) / rar archives, optionally with nested archives.

``python -m prep extract ARCHIVE OUT_DIR [--nested] [--force] [--max-ratio R] [--max-gb G]``

Safety: every member is checked before anything is written for it. Refused (with the archive and the member named):
absolute paths, ``..`` components, symlinks or hard links whose target lies outside the target directory, any member
(or link target) that passes through a symlink of the archive, device files and FIFOs, hard links to members that do
not come before them, a file and a directory (or symlink) of one name, names with control characters or of the form
of our own bookkeeping (:mod:`prep.base.names`). Zip and RAR member lists are checked whole before extraction starts;
tar archives (often large and compressed) are streamed once, each member checked against everything seen before it
and before it is written. Any other problem with an archive's bytes is one line (``damaged or unsupported``).

Limits (:class:`Limits`): an archive may expand to ``max_ratio`` times its size (beyond ``ratio_floor``), to
``max_bytes`` with its nested archives, and never beyond the free space of the target. Zip and RAR are checked from
their member table before writing and held to it while writing (zip bytes counted; RAR tools run under
``RLIMIT_FSIZE`` of the largest declared size, and sizes are verified after); tar members are checked from their
headers, one by one, before each is written.

Atomicity: an archive is extracted into a fresh hidden directory inside OUT_DIR (``.<archive>.partial``); only when
everything is extracted and verified (the tree is walked and every symlink resolved, which matters for RAR, where an
external tool writes the files) are its top-level entries moved into OUT_DIR, merging into directories that already
exist (several archives may share one OUT_DIR), and then the marker ``OUT_DIR/.<archive>.extracted`` is written. A
rerun finds the marker (same archive size and mtime, same options) and skips; a refused or failed run leaves OUT_DIR as
it was.

RAR needs the ``rarfile`` package (to read the member list) and one of the tools ``unrar``, ``unar`` (Debian package
``unar``) or ``bsdtar`` (Debian package ``libarchive-tools``). bsdtar cannot unpack solid RAR 3 archives and unar
1.10 fails on some RAR 5 archives, so every tool found is tried in turn, the one most likely to succeed first.

Nested archives (``--nested``; HMDB51's ``hmdb51_org.rar`` holds one ``<class>.rar`` per class): every archive found
in the extracted tree is extracted, with the same checks, into a folder named after it (``brush_hair.rar`` →
``brush_hair/``; a name that gives no usable folder, such as ``...zip``, refuses the whole) and then removed; if an
inner archive holds just one folder of that same name, its content is lifted, so both layouts give
``brush_hair/<video>.avi``.
"""
import bz2
import errno
import gzip
import json
import lzma
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from prep.base import arguments, names
from prep.base.diskspace import human
from prep.base.errors import UserError, one_line

ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".tbz", ".txz", ".tar", ".zip", ".rar")
RAR_MAGIC = (b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# what each archive suffix promises as its first bytes (a tar's "ustar" sits at offset 257)
CONTENT_BY_SUFFIX = {".rar": "a RAR archive", ".zip": "a zip archive", ".tar.gz": "a gzip stream",
                     ".tgz": "a gzip stream", ".tar.bz2": "a bzip2 stream", ".tbz2": "a bzip2 stream",
                     ".tbz": "a bzip2 stream", ".tar.xz": "an xz stream", ".txz": "an xz stream",
                     ".tar": "a tar archive"}
TEXT_SUFFIXES = (".csv", ".list", ".txt")  # annotation and link lists: text, never a web page
HEAD_BYTES = 1024  # enough to tell an HTML page from an archive
UNPACK_REPORT = "unpack_failed.csv"  # beside the archives' folders in `prep unpack`'s OUT_DIR
APT_HINT = "install one: apt-get install unar   (or: apt-get install libarchive-tools, for bsdtar)"


class UnsafeArchiveError(UserError):
    """An archive member would land outside the target directory."""


@dataclass
class Member:
    """One archive member as the safety check sees it."""

    name: str  # as stored in the archive
    kind: str  # "file" | "dir" | "symlink" | "hardlink" | "other"
    target: str = ""  # link target (symlink: relative to the link's folder; hardlink: archive path)
    size: int = -1  # regular files: uncompressed size, when known


# ---------------------------------------------------------------------------------------------------------------------
# member checks


def _parts(path):
    """Components of an archive path ('\\' counts as a separator too, to be safe), without '' and '.'."""
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def _is_absolute(path):
    path = path.replace("\\", "/")
    return path.startswith("/") or (len(path) >= 2 and path[1] == ":" and path[0].isalpha())


class MemberChecker:
    """Checks members one by one, remembering the symlinks seen so far (``check_all`` checks a whole list)."""

    def __init__(self, archive):
        self.archive = archive
        self.symlinks = set()  # normalized relative paths of symlink members
        self.files = set()  # ... of file members (hard links may point only to these, once seen)
        self.dirs = set()  # ... of directories, named or implied by a member's path

    def refuse(self, member, why):
        raise UnsafeArchiveError(f"{self.archive}: refusing member {names.shown(member.name)!r}: {why}; "
                                 f"nothing was extracted")

    def relpath(self, member):
        """The normalized relative path of a member, or None for the archive root ('./')."""
        if _is_absolute(member.name):
            self.refuse(member, "absolute path")
        parts = _parts(member.name)
        if ".." in parts:
            self.refuse(member, "'..' in its path")
        return "/".join(parts) or None

    def _through_symlink(self, parts):
        """The first proper prefix of parts that is a symlink member, or None."""
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.symlinks:
                return prefix
        return None

    def _resolve_inside(self, member, base_parts, target):
        """Walk target lexically from base_parts; refuse if it leaves the root or passes through a symlink."""
        if _is_absolute(target):
            self.refuse(member, f"link target {names.shown(target)!r} is an absolute path")
        parts = list(base_parts)
        components = _parts(target)
        for i, component in enumerate(components):
            if component == "..":
                if not parts:
                    self.refuse(member, f"link target {names.shown(target)!r} points outside the target directory")
                parts.pop()
            else:
                parts.append(component)
                if i < len(components) - 1 and "/".join(parts) in self.symlinks:
                    self.refuse(member, f"link target {names.shown(target)!r} passes through the symlink "
                                        f"{names.shown('/'.join(parts))!r}")
        return parts

    def check(self, member):
        """Check one member given the symlinks seen before; return its normalized relative path (None for root)."""
        rel = self.relpath(member)
        if rel is None:
            if member.kind != "dir":
                self.refuse(member, "names the target directory itself")
            return None
        parts = rel.split("/")
        problem = names.member_problem(parts)
        if problem is not None:
            self.refuse(member, problem)
        via = self._through_symlink(parts)
        if via is not None:
            self.refuse(member, f"its path passes through the symlink {names.shown(via)!r} of the same archive")
        if member.kind == "other":
            self.refuse(member, "device files, FIFOs and other special files are not extracted")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.files:
                self.refuse(member, f"its path passes through {prefix!r}, a file member of the same archive")
        if member.kind in ("dir", "symlink") and rel in self.files:
            self.refuse(member, "a file member of the same name came before it")
        if member.kind != "dir" and rel in self.dirs:
            self.refuse(member, "a directory of the same name came before it")
        if member.kind == "symlink":
            self._resolve_inside(member, parts[:-1], member.target)
            self.symlinks.add(rel)
        elif member.kind == "hardlink":
            target_parts = self._resolve_inside(member, [], member.target)
            if not target_parts:
                self.refuse(member, f"hard link target {names.shown(member.target)!r} is the target directory")
            via = self._through_symlink(target_parts + ["x"])
            if via is not None:
                self.refuse(member, f"hard link target {names.shown(member.target)!r} passes through the symlink "
                                    f"{names.shown(via)!r}")
            if "/".join(target_parts) not in self.files:
                self.refuse(member, f"hard link target {names.shown(member.target)!r} is not a file member before it")
        elif rel in self.symlinks:
            self.refuse(member, "it would replace a symlink of the same archive")
        self.dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        if member.kind == "dir":
            self.dirs.add(rel)
        elif member.kind in ("file", "hardlink"):
            self.files.add(rel)
        return rel

    def check_all(self, members):
        """Check a whole member list (order-independent for symlinks: all of them are known first)."""
        members = list(members)
        for member in members:
            if member.kind == "symlink":
                rel = self.relpath(member)
                if rel:
                    self.symlinks.add(rel)
        known = set(self.symlinks)
        rels = []
        for member in members:
            rel = self.relpath(member)
            if member.kind == "symlink":
                self.symlinks = known - {rel}
            rels.append(self.check(member))
            self.symlinks = set(known)
        return rels


# ---------------------------------------------------------------------------------------------------------------------
# detection


def archive_kind(path):
    """'zip' | 'rar' | 'tar' for an archive file (by content, then by name), or None."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if head.startswith(RAR_MAGIC):
        return "rar"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return "tar"  # compressed; tarfile tells later whether a tar is inside
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    name = path.name.lower()
    if name.endswith(".zip") and zipfile.is_zipfile(path):
        return "zip"
    return None


def describe_content(head):
    """What a file whose first bytes are ``head`` holds, in words for a message ("an HTML page")."""
    if not head:
        return "an empty file"
    for magic, what in ((RAR_MAGIC, "a RAR archive"), (ZIP_MAGIC, "a zip archive"), ((b"\x1f\x8b",), "a gzip stream"),
                        ((b"BZh",), "a bzip2 stream"), ((b"\xfd7zXZ\x00",), "an xz stream")):
        if head.startswith(magic):
            return what
    if head[257:262] == b"ustar":
        return "a tar archive"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or any(tag in text for tag in (b"<html", b"<head", b"<body")):
        return "an HTML page"
    if text.startswith(b"<?xml"):
        return "an XML document"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "plain text"
    return "unrecognised binary data"


def content_mismatch(name, head):
    """None if the first bytes of a file called ``name`` are what its archive suffix promises (or the name has no
    archive suffix), else a phrase for the message: ``expected a RAR archive, got an HTML page``. Lists and CSVs
    only must not be a web page (a login or error page served in their place)."""
    lower = name.lower()
    got = describe_content(head)
    if lower.endswith(TEXT_SUFFIXES):
        return f"expected text, got {got}" if got in ("an HTML page", "an XML document") else None
    expected = next((what for suffix, what in CONTENT_BY_SUFFIX.items() if lower.endswith(suffix)), None)
    if expected is None:
        return None
    if got == expected or (expected == "a tar archive" and got == "unrecognised binary data"):  # pre-POSIX tar
        return None
    return f"expected {expected}, got {got}"


def archive_stem(name):
    """``brush_hair.rar`` → ``brush_hair``; ``part1.tar.gz`` → ``part1``."""
    lower = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def looks_like_archive(path):
    return path.name.lower().endswith(ARCHIVE_SUFFIXES) and archive_kind(path) is not None


def folder_name(archive_name, reserved=()):
    """The folder an archive is extracted into (its stem); raises :class:`prep.base.names.UnsafeNameError` when the
    stem could address anything but a visible folder of its own (``...zip`` → ``..``) or one of the ``reserved``
    names of our own files beside it."""
    stem = archive_stem(archive_name)
    problem = (names.component_problem(stem) or ("a hidden name" if stem.startswith(".") else None)
               or ("the name of our own report beside it" if stem in reserved else None))
    if problem is not None:
        raise names.UnsafeNameError(f"archive name {names.printable(archive_name)!r} gives no usable folder name "
                                    f"({names.printable(stem)!r}: {problem})")
    return stem


# ---------------------------------------------------------------------------------------------------------------------
# limits


@dataclass
class Limits:
    """How far one archive may expand: at most ``max_ratio`` times its own size (beyond ``ratio_floor`` bytes, so
    small archives of text are never refused) and ``max_bytes`` in all, nested archives included; never beyond the
    free space of the target (less ``free_margin`` bytes)."""

    max_ratio: float = 100.0
    max_bytes: int = 2 * 2**40
    ratio_floor: int = 64 * 2**20
    free_margin: int = 256 * 2**20


class Budget:
    """The bytes one ``extract_archive`` call may still write (shared by its nested archives)."""

    def __init__(self, limits, out_dir):
        self.limits = limits
        free = shutil.disk_usage(out_dir).free - limits.free_margin
        self.remaining, self.why = min(
            (limits.max_bytes, f"the limit of {human(limits.max_bytes)} (nested archives included)"),
            (max(0, free), f"the {human(max(0, free))} free on {out_dir}"))

    def allowance(self, archive):
        return Allowance(archive, self)


class Allowance:
    """The bytes one archive may write: checked before writing (declared sizes) and enforced while writing."""

    def __init__(self, archive, budget):
        self.archive, self.budget = archive, budget
        limits = budget.limits
        by_ratio = max(limits.ratio_floor, int(limits.max_ratio * os.path.getsize(archive)))
        self.left, self.why = budget.remaining, budget.why
        if by_ratio < self.left:
            self.left, self.why = by_ratio, f"{limits.max_ratio:g} times its size (the expansion ratio limit)"

    def _refuse(self, what):
        raise UnsafeArchiveError(f"{self.archive}: refusing {what}: the archive would expand to more than "
                                 f"{self.why}; nothing was extracted")

    def check_declared(self, members):
        """Before writing: the member table's sizes, in order; the member at which they pass the limit is named."""
        total = 0
        for member in members:
            if member.kind == "file":
                total += max(0, member.size)
                if total > self.left:
                    self._refuse(f"member {names.shown(member.name)!r} (the member table adds up to {human(total)} "
                                 f"with it)")

    def take(self, count, member, what="member"):
        """While writing: count bytes of member (``what``: a member, or a header read into memory)."""
        if count > self.left:
            self._refuse(f"{what} {names.shown(member)!r}")
        self.left -= count
        self.budget.remaining -= count


# ---------------------------------------------------------------------------------------------------------------------
# zip


def _is_special(mode):
    """Unix mode bits of a device, FIFO or socket."""
    return stat.S_IFMT(mode) in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK)


def _zip_members(archive, zf):
    members = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.is_dir():
            kind = "dir"
        elif info.create_system == 3 and stat.S_ISLNK(mode):
            kind = "symlink"
        elif info.create_system == 3 and _is_special(mode):
            kind = "other"
        else:
            kind = "file"
        target = zf.read(info).decode("utf-8", "surrogateescape") if kind == "symlink" else ""
        members.append((info, Member(info.filename, kind, target, info.file_size)))
    return members


def _extract_zip(archive, dest, allowance):
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(f"{archive}: not a readable zip archive ({error})") from None
    with zf:
        members = _zip_members(archive, zf)
        rels = MemberChecker(archive).check_all(m for _, m in members)
        allowance.check_declared(m for _, m in members)
        try:
            for (info, member), rel in zip(members, rels):
                if rel is None:
                    continue
                path = dest / rel
                if member.kind == "dir":
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                if member.kind == "symlink":
                    os.symlink(member.target, path)
                    continue
                with zf.open(info) as source, open(path, "wb") as sink:
                    while chunk := source.read(1 << 20):  # counted as written: a member table can lie
                        allowance.take(len(chunk), rel)
                        sink.write(chunk)
                mode = (info.external_attr >> 16) & 0o777
                if info.create_system == 3 and mode:
                    os.chmod(path, mode | 0o600)
                timestamp = time.mktime(info.date_time + (0, 0, -1))
                os.utime(path, (timestamp, timestamp))
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error) as error:
            raise UserError(f"{archive}: damaged or unsupported zip ({error})") from None
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
                raise
            raise UserError(f"{archive}: cannot extract member {names.shown(info.filename)!r}: {error}") from None


# ---------------------------------------------------------------------------------------------------------------------
# tar


# a PAX or GNU long-name/long-link header is read whole into memory before its member: it may be at most this big
# (a path on Linux is at most 4096 bytes; PAX records add a few short fields), and it counts against the allowance
HEADER_LIMIT = 1 << 20
_TAR_BLOCK = tarfile.BLOCKSIZE


def _tar_member(info):
    if info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    elif info.isreg() and info.sparse is None:
        kind = "file"
    else:
        kind = "other"  # devices, FIFOs, and sparse files (their maps are unbounded lists; no dataset ships one)
    return Member(info.name, kind, info.linkname if kind in ("symlink", "hardlink") else "", info.size)


def _bounded_tarinfo(archive, allowance):
    """A TarInfo class whose header records are bounded before tarfile reads them into memory.

    tarfile reads a PAX or GNU long-name header's whole data with one read (CPython 3.10-3.13 Lib/tarfile.py,
    TarInfo._proc_gnulong / _proc_pax, the hooks its _proc_member comment invites subclasses to use), and old GNU and
    PAX 1.0 sparse maps block by block without end: a 255 KB .tar.gz can hold a 256 MiB name.
    """

    class BoundedTarInfo(tarfile.TarInfo):
        def _bound(self, what):
            if self.size > HEADER_LIMIT:
                raise UnsafeArchiveError(f"{archive}: refusing {what} of {human(self.size)} (at most "
                                         f"{human(HEADER_LIMIT)}); nothing was extracted")
            allowance.take(self._block(self.size), names.shown(self.name), what)

        def _refuse_sparse(self, *_):
            raise UnsafeArchiveError(f"{archive}: refusing member {names.shown(self.name)!r}: sparse files are not "
                                     f"extracted; nothing was extracted")

        def _proc_gnulong(self, tf):
            self._bound("a GNU long-name header")
            return super()._proc_gnulong(tf)

        def _proc_pax(self, tf):
            self._bound("a PAX header")
            return super()._proc_pax(tf)

        _proc_sparse = _proc_gnusparse_10 = _refuse_sparse

    return BoundedTarInfo


def _decompressed(handle):
    """The tar bytes of an archive file: every member of a gzip stream, every stream of bzip2 and xz (tarfile's own
    stream reader stops at the end of the first gzip member, and the rest of a split .tar.gz was silently lost)."""
    head = handle.read(6)
    handle.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=handle, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(handle)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(handle)
    return handle


class _Remembering:
    """A reader that keeps its last read: the bytes tarfile buffered past an end-of-archive block can be read again."""

    def __init__(self, raw, first=b""):
        self.raw, self.first, self.last, self.total = raw, first, b"", 0

    def read(self, size=-1):
        if self.first:
            data, self.first = self.first, b""
            if size is not None and 0 <= size < len(data):
                data, self.first = data[:size], data[size:]
        else:
            data = self.raw.read(size)
        self.last = data
        self.total += len(data)
        return data


def _after_end(stream, consumed, allowance):
    """What follows a tar's end-of-archive block, from the first block that is not zeros (b"" when nothing does):
    a .tar.gz made by ``cat a.tar.gz b.tar.gz`` holds a second tar there. The zeros read count against the
    allowance (gigabytes of them compress to a few MB)."""
    unread = stream.total - consumed
    data = stream.last[len(stream.last) - unread:] if unread else b""
    skipped = 0  # zero bytes passed since the end block, to keep the next tar's block alignment
    while True:
        start = len(data) - len(data.lstrip(b"\0"))
        if start < len(data):
            pad = (skipped + start) % _TAR_BLOCK
            return b"\0" * pad + data[start:]
        skipped += len(data)
        allowance.take(len(data), "(zeros after the end of the tar)", "padding")
        data = stream.raw.read(1 << 16)
        if not data:
            return b""


def _extract_tar(archive, dest, allowance):
    """Streamed once (Kinetics parts are large and compressed): each member is checked, and its size taken from the
    allowance, before it is written; tarfile writes exactly the size the header gives. Tars one after another in
    one stream (concatenated .tar.gz files) are all read, as ``tar --ignore-zeros`` does, under one set of checks."""
    checker = MemberChecker(archive)
    tarinfo = _bounded_tarinfo(archive, allowance)
    try:
        with open(archive, "rb") as handle, _decompressed(handle) as raw:
            stream = _Remembering(raw)
            while True:
                with tarfile.open(fileobj=stream, mode="r|", tarinfo=tarinfo) as tf:
                    for info in tf:
                        _extract_tar_member(archive, dest, allowance, checker, tf, info)
                    consumed = tf.fileobj.tell()  # tarfile's _Stream: bytes it has handed out, end block included
                rest = _after_end(stream, consumed, allowance)
                if not rest:
                    return
                stream = _Remembering(raw, rest)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, OSError) as error:
        if isinstance(error, OSError) and not isinstance(error, gzip.BadGzipFile) and error.errno is not None:
            raise
        raise UserError(f"{archive}: damaged or not a tar archive ({one_line(error)})") from None


def _extract_tar_member(archive, dest, allowance, checker, tf, info):
    # its header counts too: a million empty members compress to a few KB
    allowance.take(_TAR_BLOCK, names.shown(info.name), "the header of member")
    rel = checker.check(_tar_member(info))
    if rel is None:
        return
    if info.isdir():
        (dest / rel).mkdir(parents=True, exist_ok=True)
        return
    info.name = rel
    if info.islnk():
        info.linkname = "/".join(_parts(info.linkname))
    elif info.isreg():
        allowance.take(info.size, rel)
    try:
        # the 'data' filter repeats the essential checks and drops owners and special mode bits
        tf.extract(info, dest, filter="data")
    except tarfile.FilterError as error:
        raise UnsafeArchiveError(f"{archive}: refusing member {names.shown(rel)!r}: {one_line(error)}; "
                                 f"nothing was extracted") from None
    except OSError as error:
        if error.errno in _ENVIRONMENT:
            raise
        raise UserError(f"{archive}: cannot extract member {names.shown(rel)!r}: {one_line(error)}") from None


# ---------------------------------------------------------------------------------------------------------------------
# rar


def _import_rarfile():
    try:
        import rarfile
    except ImportError:
        raise UserError("RAR support needs the Python package rarfile: pip install rarfile") from None
    return rarfile


def rar_tools():
    """The RAR extraction tools found on PATH, as names."""
    return [tool for tool in ("unrar", "unar", "bsdtar") if shutil.which(tool)]


def _rar_command(tool, archive):
    """The command that extracts archive into the current directory: the tools run in their target folder, whose
    path holds the archive's name (unar reads a '\\' in ``-o DIR`` as a separator and wrote beside it)."""
    archive = os.path.abspath(archive)  # never an argument that starts with '-'
    if tool == "unrar":
        return ["unrar", "x", "-y", "-o+", "-idq", "-p-", archive, "." + os.sep]
    if tool == "unar":
        return ["unar", "-q", "-f", "-D", "-nr", "-p", "", "-o", ".", archive]
    return ["bsdtar", "-x", "--no-same-owner", "-f", archive, "-C", "."]


def _rar_members(archive):
    rarfile = _import_rarfile()
    try:
        rf = rarfile.RarFile(str(archive))
    except rarfile.NeedFirstVolume:
        raise UserError(f"{archive}: a later volume of a multi-volume RAR; extract the first volume") from None
    except (rarfile.Error, OSError) as error:
        raise UserError(f"{archive}: not a readable RAR archive ({error})") from None
    with rf:
        if rf.needs_password():
            raise UserError(f"{archive}: RAR is password-protected")
        version = 5 if type(rf._file_parser).__name__ == "RAR5Parser" else 3
        members = []
        for info in rf.infolist():
            if info.needs_password():
                raise UserError(f"{archive}: member {names.shown(info.filename)!r} is password-protected")
            redir = getattr(info, "file_redir", None)
            if info.is_dir():
                members.append(Member(info.filename, "dir"))
            elif redir:
                redir_type, _flags, target = redir
                kind = "hardlink" if redir_type in (4, 5) else "symlink"  # 4 hard link, 5 file copy
                members.append(Member(info.filename, kind, target))
            elif info.is_symlink():
                try:  # RAR 3 keeps a symlink's target as the member's data
                    target = rf.read(info).decode("utf-8", "surrogateescape")
                except Exception as error:  # noqa: BLE001 - any failure means we cannot vouch for the link
                    raise UnsafeArchiveError(f"{archive}: refusing member {names.shown(info.filename)!r}: cannot "
                                             f"read its link target ({one_line(error, 200)}); nothing was "
                                             f"extracted") from None
                members.append(Member(info.filename, "symlink", target))
            else:
                special = info.host_os == 3 and _is_special(info.mode or 0)
                members.append(Member(info.filename, "other" if special else "file", "", info.file_size))
    return version, members


def _verify_tree(archive, root):
    """After extraction into root: no special files, and every symlink resolves inside root.

    os.walk does not descend into symlinked folders, so every other entry it reaches lies inside root.
    """
    root_real = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                real = os.path.realpath(path)
                if real != root_real and not real.startswith(root_real + os.sep):
                    raise UnsafeArchiveError(f"{archive}: refusing member {os.path.relpath(path, root)!r}: it "
                                             f"resolves outside the target directory; nothing was extracted")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchiveError(f"{archive}: refusing member {os.path.relpath(path, root)!r}: special "
                                         f"file; nothing was extracted")


# runs a command with a limit on the size of every file it writes (RLIMIT_FSIZE: SIGXFSZ beyond it) — a shim
# process instead of preexec_fn, which is unsafe while `prep unpack` extracts archives in threads
# (Python ignores SIGXFSZ, and exec keeps ignored signals: the shim restores the default, which ends the tool)
_FSIZE_SHIM = ("import os, resource, signal, sys; size = int(sys.argv[1]); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (size, size)); "
               "signal.signal(signal.SIGXFSZ, signal.SIG_DFL); os.execvp(sys.argv[2], sys.argv[2:])")


def _with_file_size_limit(command, size):
    """command, run so that no file it writes grows beyond size bytes, whatever the member table said."""
    return [sys.executable, "-c", _FSIZE_SHIM, str(size), *command]


def _extract_rar(archive, dest, allowance):
    version, members = _rar_members(archive)
    rels = MemberChecker(archive).check_all(members)
    allowance.check_declared(members)
    # an external tool writes the files: the kernel holds each to the largest declared size, the check after
    # extraction holds each to its own
    largest = max((m.size for m in members if m.kind == "file"), default=0) + 1
    tools = rar_tools()
    if not tools:
        raise UserError(f"{archive}: no RAR extraction tool found (unrar, unar or bsdtar); {APT_HINT}")
    order = {5: ("unrar", "bsdtar", "unar"), 3: ("unrar", "unar", "bsdtar")}[version]
    tools.sort(key=order.index)
    failures = []
    for tool in tools:
        scratch = dest / names.bookkeeping(tool, "scratch")
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir()
        result = subprocess.run(_with_file_size_limit(_rar_command(tool, archive), largest), cwd=scratch,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        problem = None
        if result.returncode == -signal.SIGXFSZ:
            problem = "a file grew beyond every size in the member table"
        elif result.returncode != 0:
            problem = f"exit {result.returncode}: {' '.join(result.stdout.split())[-300:]}"
        else:
            _verify_tree(archive, scratch)
            for member, rel in zip(members, rels):
                path = scratch / rel if rel else scratch
                if member.kind == "file" and (not path.is_file() or path.is_symlink()
                                              or (member.size >= 0 and path.stat().st_size != member.size)):
                    problem = f"{names.shown(rel)!r} missing or of the wrong size after extraction"
                    break
        if problem is None:
            for entry in list(scratch.iterdir()):
                os.replace(entry, dest / entry.name)
            scratch.rmdir()
            return
        shutil.rmtree(scratch)
        failures.append(f"{tool}: {problem}")
    raise UserError(f"{archive}: no RAR tool could extract it ({'; '.join(failures)}); "
                    f"tools tried: {', '.join(tools)}; {APT_HINT}")


# ---------------------------------------------------------------------------------------------------------------------
# the stage


_EXTRACTORS = {"zip": _extract_zip, "tar": _extract_tar, "rar": _extract_rar}


# what damaged or hostile archive bytes make the readers raise (gzip.BadGzipFile is an OSError; tarfile reading a gzip
# header cut short raises TypeError, found by tests/test_archives.py's fuzz test)
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, EOFError, ValueError, KeyError, IndexError,
            TypeError, OverflowError, struct.error, zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError)
# OSErrors about our side (disk, permissions), not about the archive: left for the caller's disk-full message
_ENVIRONMENT = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS)


def _extract_into(archive, dest, budget):
    """Extract archive into the existing, empty directory dest (safety checks and limits included); any problem
    with the archive's bytes becomes a one-line :class:`UserError`."""
    kind = archive_kind(archive)
    if kind is None:
        with open(archive, "rb") as handle:
            head = handle.read(HEAD_BYTES)
        raise UserError(f"{archive}: not a zip, tar or rar archive (it holds {describe_content(head)})")
    try:
        _EXTRACTORS[kind](archive, dest, budget.allowance(archive))
    except UserError:
        raise
    except _DAMAGED as error:
        raise UserError(f"{archive}: damaged or unsupported {kind} archive "
                        f"({type(error).__name__}: {one_line(error)})") from None
    except OSError as error:
        if error.errno in _ENVIRONMENT:
            raise
        raise UserError(f"{archive}: cannot extract it ({one_line(error)})") from None


def _kind_on_disk(path):
    """'dir' (a real folder), 'file' (anything else that exists: file, symlink) or None."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    return "dir" if stat.S_ISDIR(mode) else "file"


def merge_conflict(source, dest, replace_files):
    """The first entry of the tree ``source`` that cannot be merged into ``dest`` without deleting what is there,
    as ``(relative path, why)``, or None. Folders merge; nothing that is a folder in one and not in the other is ever
    replaced (another archive's folder is never deleted for a file, nor a file or symlink for a folder); a file
    replaces a file only when ``replace_files`` (a rerun of the same archive into its own folder)."""
    for entry in sorted(source.iterdir()):
        target = dest / entry.name
        there, here = _kind_on_disk(target), _kind_on_disk(entry)
        if there is None:
            continue
        if here == "dir" and there == "dir":
            found = merge_conflict(entry, target, replace_files)
            if found is not None:
                return (f"{entry.name}/{found[0]}", found[1])
        elif here != there:
            return (entry.name, f"a {'folder' if here == 'dir' else 'file'} in the archive, a "
                                f"{'folder' if there == 'dir' else 'file or symlink'} already there")
        elif not replace_files:
            return (entry.name, "a file already there")
    return None


def _merge_move(source, dest):
    """Move the entries of directory source into directory dest, merging into existing directories (another
    extraction into the same OUT_DIR may be creating the same folders at the same time); :func:`merge_conflict`
    said beforehand that nothing there is in the way but files to replace."""
    for entry in list(source.iterdir()):
        target = dest / entry.name
        is_dir = _kind_on_disk(entry) == "dir"
        if is_dir and _kind_on_disk(target) == "dir":
            _merge_move(entry, target)
            entry.rmdir()
            continue
        try:
            os.replace(entry, target)
        except OSError as error:
            if not (is_dir and error.errno in (errno.ENOTEMPTY, errno.EEXIST) and _kind_on_disk(target) == "dir"):
                raise
            _merge_move(entry, target)
            entry.rmdir()


def _refuse_conflict(archive, dest, source, replace_files, rule):
    found = merge_conflict(source, dest, replace_files)
    if found is not None:
        raise UserError(f"{archive}: cannot merge into {dest}: {names.shown(found[0])!r} is {found[1]} ({rule}); "
                        f"nothing was extracted")


def _extract_nested(root, depth, outer, budget):
    """Extract every archive under root (extracted from outer) into a folder named after it, then remove it.
    An inner archive may add to a folder of the outer one but never replace anything in it."""
    if depth <= 0:
        return
    found = []
    for folder, _dirs, files in os.walk(root):
        found.extend(Path(folder) / name for name in sorted(files))
    for path in found:
        if path.is_symlink() or not looks_like_archive(path):
            continue
        member = path.relative_to(root).as_posix()
        try:
            stem = folder_name(path.name)
        except names.UnsafeNameError as error:
            raise UnsafeArchiveError(f"{outer}: refusing member {names.shown(member)!r}: {error}; "
                                     f"nothing was extracted") from None
        folder = path.parent
        target = folder / stem
        if _kind_on_disk(target) not in (None, "dir"):
            raise UserError(f"{outer}: cannot extract the inner archive {names.shown(member)!r}: a file "
                            f"{names.shown(stem)!r} of the outer archive is in the way; nothing was extracted")
        scratch = folder / names.bookkeeping(f"{stem}.nested", "partial")
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir()
        _extract_into(path, scratch, budget)
        _extract_nested(scratch, depth - 1, path.name, budget)
        entries = list(scratch.iterdir())
        if len(entries) == 1 and entries[0].name == stem and _kind_on_disk(entries[0]) == "dir":
            lifted = folder / names.bookkeeping(f"{stem}.nested", "lifted")
            os.replace(entries[0], lifted)
            scratch.rmdir()
            scratch = lifted
        target.mkdir(exist_ok=True)
        _refuse_conflict(f"{outer}: inner archive {names.shown(member)}", target, scratch, False,
                         "an inner archive never overwrites the outer archive's files")
        _merge_move(scratch, target)
        scratch.rmdir()
        path.unlink()


def _fingerprint(archive, nested):
    st = os.stat(archive)
    return {"archive": os.path.basename(archive), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "nested": nested}


def marker_path(archive, out_dir):
    return Path(out_dir) / names.bookkeeping(Path(archive).name, "extracted")


def extract_archive(archive, out_dir, nested=False, force=False, max_depth=2, limits=None):
    """Extract archive into out_dir safely and atomically; return the marker file that records completion.

    Skips (and returns the marker) when the marker says this very archive (size, mtime) was already extracted with
    the same options, unless force. Raises :class:`UnsafeArchiveError` for members that would land outside out_dir
    or an archive that would expand beyond ``limits`` (:class:`Limits`; defaults when None).
    """
    archive, out_dir = Path(archive), Path(out_dir)
    if not archive.is_file():
        raise UserError(f"{archive}: archive not found")
    marker = marker_path(archive, out_dir)
    fingerprint = _fingerprint(archive, nested)
    if not force and marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == fingerprint:
                return marker
        except ValueError:
            pass
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / names.bookkeeping(archive.name, "partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted run
    partial.mkdir()
    try:
        budget = Budget(limits or Limits(), out_dir)
        _extract_into(archive, partial, budget)
        if nested:
            _extract_nested(partial, max_depth - 1, archive, budget)
        _verify_tree(archive, partial)
        # a file may replace only what this archive brought before (its marker is there: a rerun, or a merge cut
        # short); folders merge, and nothing of another archive is ever replaced
        _refuse_conflict(archive, out_dir, partial, marker.is_file(), "what another archive brought is never "
                         "replaced, and a folder never by a file nor a file by a folder")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if created:
            try:
                out_dir.rmdir()
            except OSError:
                pass
        raise
    _write_marker(marker, dict(fingerprint, merging=True))  # its files are arriving: never skipped, may be replaced
    _merge_move(partial, out_dir)
    partial.rmdir()
    _write_marker(marker, fingerprint)
    return marker


def _write_marker(marker, content):
    tmp_marker = marker.with_name(names.bookkeeping(marker.name, "tmp"))
    tmp_marker.write_text(json.dumps(content) + "\n", encoding="utf-8")
    os.replace(tmp_marker, marker)


def unpack(archives, out_dir, nested=False, tolerate_failures=False, workers=1, limits=None):
    """Extract each archive into ``out_dir/<archive stem>/`` (atomically, skipping finished ones).

    Returns ``[(archive, reason)]`` of the archives that could not be extracted; those are only tolerated when
    tolerate_failures (Kinetics: a bad archive means missing clips; a refused name or member costs that archive
    only), else the first failure is raised, and an archive name that gives no usable folder name (``...zip``) is
    refused before anything is extracted. Two archives with the same stem get ``<stem>``, ``<stem>.2``, … in the
    order given.
    """
    from concurrent.futures import ThreadPoolExecutor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets, failed, taken = [], [], set()
    for archive in archives:
        try:
            stem = folder_name(Path(archive).name, reserved=(UNPACK_REPORT,))
        except UserError as error:
            if not tolerate_failures:
                raise
            failed.append((str(archive), one_line(error)))
            continue
        folder, number = stem, 1
        while folder in taken:
            number += 1
            folder = f"{stem}.{number}"
        taken.add(folder)
        targets.append((Path(archive), out_dir / folder))

    def one(item):
        archive, target = item
        try:
            extract_archive(archive, target, nested=nested, limits=limits)
            return None
        except UserError as error:
            if not tolerate_failures:
                raise
            return (str(archive), one_line(error))  # extract_archive left target as it was

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, targets))
    return failed + [r for r in results if r is not None]


def limits_from(args):
    return Limits(max_ratio=args.max_ratio, max_bytes=int(args.max_gb * 2**30))


def add_limit_arguments(parser):
    defaults = Limits()
    parser.add_argument("--max-ratio", type=arguments.number(above=0), default=defaults.max_ratio,
                        help=f"refuse an archive that expands to more than this many times its size (beyond "
                             f"{human(defaults.ratio_floor)}; default {defaults.max_ratio:g})")
    parser.add_argument("--max-gb", type=arguments.number(above=0), default=defaults.max_bytes / 2**30,
                        help=f"refuse an archive that expands to more than this, nested archives included "
                             f"(GB of 2**30 bytes; default {defaults.max_bytes / 2**30:g})")


def run(args):
    marker = extract_archive(args.archive, args.out_dir, nested=args.nested, force=args.force,
                             limits=limits_from(args))
    print(f"extracted {args.archive} into {args.out_dir} (marker {marker.name})")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("extract", help="safely extract a zip / tar / rar archive",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=arguments.input_file, help="zip, tar, tar.gz/bz2/xz or rar file")
    parser.add_argument("out_dir", type=arguments.output_dir,
                        help="target directory (created; may already hold other archives' content)")
    parser.add_argument("--nested", action="store_true",
                        help="also extract archives found inside, each into a folder named after it")
    parser.add_argument("--force", action="store_true", help="extract again even if the marker says it is done")
    add_limit_arguments(parser)
    parser.set_defaults(func=run)
