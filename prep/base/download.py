"""Resumable, checksummed, parallel downloads with a report of what could not be had.

``python -m prep download URL_LIST OUT_DIR [--checksums FILE] [--workers N] [--retries N] [--cache DIR] [--deadline S]``

URL_LIST holds one http(s):// or file:// URL a line (blank lines and ``#`` comments ignored); each file is saved
under the last component of its URL path, URL-unquoted — unless that name could be taken for one of our own files
(hidden names, ``*.part``, ``missing.csv``: :func:`prep.base.names.download_name_problem`), which is refused.
``--checksums`` takes ``sha256sum`` / ``md5sum`` output (``HASH  NAME``; md5, sha1, sha256 or sha512, told by the
hash length; names matched by their last component).

A file is fetched into ``NAME.part`` beside its target and renamed into place only when complete and verified, so a
partial or corrupt file never stands under its final name: the body has the size the server announced (a body
without any length is confirmed by a Range probe at its end), every answer matches its request (a 206 only for the
range asked, from 0 when none was), a file named like an archive starts with that archive's magic bytes, and the
checksum matches when one is known. A deadline per file (all attempts) stands beside the per-read timeout.
An interrupted download resumes from the ``.part`` with an HTTP Range request; a server that ignores Range gets a
clean restart. Failed attempts are retried with exponential backoff; an attempt that made progress before the
connection dropped does not use up a retry (up to a hard cap). A file already under its final name is skipped when its
checksum matches, or when no checksum is known (a verified checksum is remembered in ``.NAME.verified`` while the
file's size and mtime stay, so reruns do not hash hundreds of GB again). With ``--cache DIR`` files found there by
name (and checksum, when known) are hard-linked (or copied) instead of downloaded, and new downloads are linked in.

``OUT_DIR/missing.csv`` (columns ``url,reason``) lists what could not be had; it is always written (header only when
nothing is missing). Exit status 0 unless nothing at all came.
"""
import csv
import hashlib
import http.client
import os
import re
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse
from urllib.request import Request, url2pathname, urlopen

from prep.base import arguments, names
from prep.base.archives import HEAD_BYTES, content_mismatch
from prep.base.errors import UserError
from prep.base.sources import read_checksums, read_url_list

USER_AGENT = "actionflow-prep/0.1 (python urllib)"
CHUNK = 1 << 20
MISSING_CSV = "missing.csv"
DEADLINE = 6 * 3600.0  # seconds per file, all attempts together (a server trickling bytes never trips the timeout)


class PermanentError(Exception):
    """Retrying will not help (404, unsupported URL, checksum mismatch of a fresh download)."""


class TransientError(Exception):
    """Worth another attempt (connection dropped, timeout, 5xx, an answer that does not match the request)."""


class DeadlineError(PermanentError):
    """The file took longer than its deadline; the ``.part`` stays for the next run to resume."""


@dataclass
class Outcome:
    url: str
    name: str
    status: str  # "downloaded" | "present" | "cached" | "missing"
    path: Path = None  # the file under its final name, when there is one
    reason: str = ""  # why it is missing

    @property
    def ok(self):
        return self.status != "missing"


# ---------------------------------------------------------------------------------------------------------------------
# inputs


def file_name_for(url, reserved=()):
    """The file name a URL is saved under: the last path component, URL-unquoted — refused when it could address
    anything but a file of its own in the downloads folder (``..``, ``x.part``, ``missing.csv``, hidden names)."""
    name = unquote(urlparse(url).path.rstrip("/").rsplit("/", 1)[-1], errors="surrogateescape")
    problem = names.download_name_problem(name, {MISSING_CSV, *reserved})
    if problem is not None:
        raise PermanentError(f"no usable file name in the URL ({names.printable(name)!r}: {problem})")
    return name


def file_digest(path, algo, prefix=b""):
    """Hex digest of ``prefix`` followed by the file's bytes (a git blob id is sha1 of b"blob <size>\\0" + bytes)."""
    digest = hashlib.new(algo, prefix)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path):
    return path.with_name(names.bookkeeping(path.name, "verified"))


def _stamp(path, checksum):
    st = path.stat()
    return f"{checksum[0]} {checksum[1]} {st.st_size} {st.st_mtime_ns}\n"


def remember_verified(path, checksum):
    """Note beside path (``.NAME.verified``) that it has checksum, for as long as its size and mtime stay."""
    try:
        _stamp_path(path).write_text(_stamp(path, checksum), encoding="ascii")
    except OSError:
        pass


def has_checksum(path, checksum):
    """Whether the file at path has checksum ``(algorithm, hex)``; hashes only when no valid note says so already
    (rerunning over hundreds of GB of archives should not hash them all again)."""
    try:
        if _stamp_path(path).read_text(encoding="ascii") == _stamp(path, checksum):
            return True
    except (OSError, UnicodeDecodeError):
        pass
    if file_digest(path, checksum[0]) != checksum[1]:
        return False
    remember_verified(path, checksum)
    return True


# ---------------------------------------------------------------------------------------------------------------------
# fetching into NAME.part


def _size(path):
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@dataclass
class Clock:
    """The deadline of one file: every attempt's reads together."""

    seconds: float
    give_up_at: float = 0.0

    def __post_init__(self):
        self.give_up_at = time.monotonic() + self.seconds

    def left(self):
        return self.give_up_at - time.monotonic()

    def check(self, part):
        if self.left() <= 0:
            raise DeadlineError(f"not complete within the deadline of {self.seconds:g} s per file "
                                f"({_size(part)} bytes so far; a rerun resumes)")


def _copy_stream(source, part, mode, on_bytes, clock, expected=None):
    """Append (mode "ab") or write source to part; more than ``expected`` bytes (when known) is a mismatch."""
    written = 0
    with open(part, mode) as sink:
        while chunk := source.read1(CHUNK):  # read1: a trickle still returns, so the deadline is checked
            written += len(chunk)
            if expected is not None and written > expected:
                sink.close()
                _mismatch(part, f"more bytes came than the answer announced ({expected})")
            sink.write(chunk)
            if on_bytes:
                on_bytes(len(chunk))
            clock.check(part)
        sink.flush()
        os.fsync(sink.fileno())


def _fetch_file_url(url, part, on_bytes, clock):
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise PermanentError(f"file:// URL with a host ({parsed.netloc}) is not supported")
    source = Path(url2pathname(parsed.path))
    if not source.is_file():
        raise PermanentError(f"not found: {source}")
    total = source.stat().st_size
    offset = _size(part)
    if offset > total:
        offset = 0
    try:
        with open(source, "rb") as handle:
            handle.seek(offset)
            _copy_stream(handle, part, "ab" if offset else "wb", on_bytes, clock)
    except PermissionError as error:
        raise PermanentError(f"cannot read {source}: {error.strerror}") from None
    return total


def _content_range(value):
    """``bytes 100-199/1000`` → (100, 199, 1000); ``bytes */1000`` → (None, None, 1000); unknown parts → None."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    end = int(match.group(2)) if match.group(2) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    if start is not None and (end < start or (total is not None and end >= total)):
        return None, None, None  # not a range of that total
    return start, end, total


def _length(response):
    value = response.headers.get("Content-Length")
    return int(value) if value and value.strip().isdigit() else None


def _open(url, offset, timeout, clock):
    """urlopen with ``Range: bytes=offset-`` when offset; HTTP errors become Permanent/TransientError, except 416
    (returned as the HTTPError for the caller to read)."""
    request = Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urlopen(request, timeout=max(0.1, min(timeout, clock.left())))
    except HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            return error
        reason = f"HTTP {error.code} {error.reason}"
        if error.code in (408, 425, 429) or error.code >= 500:
            raise TransientError(reason) from None
        raise PermanentError(reason) from None
    except (URLError, OSError, http.client.HTTPException) as error:
        raise TransientError(f"cannot connect: {getattr(error, 'reason', error)}") from None


def _mismatch(part, message):
    """The answer does not match what was asked: what it wrote cannot be trusted."""
    part.unlink(missing_ok=True)
    raise TransientError(f"{message}; restarting")


def _second_answer_size(answer, part, clock):
    """The size of a whole body sent again (its Content-Length, else counted without keeping it)."""
    length = _length(answer)
    if length is None:
        length = 0
        while chunk := answer.read1(CHUNK):
            length += len(chunk)
            clock.check(part)
    return length


def _fetch_http(url, part, timeout, on_bytes, clock):
    """Fetch url into part (resuming it); return the total size.

    Complete only when the body has the size the answer announced (Content-Length, or the total of Content-Range);
    a 206 must carry the very range that was asked for (none asked: from byte 0), else what it wrote is dropped. A
    body without any announced length is followed by a probe, ``Range: bytes=SIZE-``: 416 confirms the end, a 206
    continues the file, and a server that ignores Range must send a whole body of that same size again."""
    offset = _size(part)
    response = _open(url, offset, timeout, clock)
    probing = False  # response answers the probe after a body without length
    while True:
        if isinstance(response, HTTPError):  # 416: nothing from offset on
            _start, _end, total = _content_range(response.headers.get("Content-Range"))
            if total == offset or (probing and total is None):
                return offset  # the .part was already complete
            _mismatch(part, f"the body ended after {offset} bytes, the server says {total}" if probing
                      else "server refused to resume (HTTP 416)")
        if probing and response.status == 200:
            with response:
                again = _second_answer_size(response, part, clock)
            if again != offset:
                _mismatch(part, f"the body ended after {offset} bytes, a second answer held {again}")
            return offset
        with response:
            length = _length(response)
            if response.status == 206:
                content_range = response.headers.get("Content-Range")
                start, end, total = _content_range(content_range)
                asked = f"bytes={offset}-" if offset else "no range (a plain GET)"
                if start != offset:
                    _mismatch(part, f"asked for {asked}, the server answered 206 with Content-Range "
                                    f"{content_range!r}")
                if length is not None and length != end - start + 1:
                    _mismatch(part, f"Content-Range {content_range!r} and Content-Length {length} disagree")
                body_end, mode = end + 1, "ab" if offset else "wb"
            elif response.status == 200:  # a fresh download, or a server that ignored Range: start over
                start, body_end, total, mode = 0, length, length, "wb"
            else:
                raise PermanentError(f"unexpected answer HTTP {response.status} {response.reason}")
            try:
                _copy_stream(response, part, mode, on_bytes, clock,
                             None if body_end is None else body_end - (offset if mode == "ab" else 0))
            except (OSError, http.client.HTTPException) as error:
                if isinstance(error, OSError) and getattr(error, "errno", None) in (28, 122):  # ENOSPC, EDQUOT
                    raise
                raise TransientError(f"connection lost after {_size(part)} of {total or '?'} bytes "
                                     f"({type(error).__name__})") from None
        size = _size(part)
        if body_end is not None and size != body_end:
            raise TransientError(f"connection closed after {size} of {total or body_end} bytes")
        if total is None:  # nothing announced how long the file is: ask what lies beyond
            offset, probing = size, True
            response = _open(url, size, timeout, clock)
            continue
        if size != total:  # a range short of the total: the rest is asked for next
            raise TransientError(f"got bytes {start}-{size - 1} of {total}; resuming")
        return total


def _fetch(url, part, timeout, on_bytes, clock):
    scheme = urlparse(url).scheme.lower()
    if scheme == "file":
        return _fetch_file_url(url, part, on_bytes, clock)
    if scheme in ("http", "https"):
        return _fetch_http(url, part, timeout, on_bytes, clock)
    raise PermanentError(f"unsupported URL scheme {scheme!r} (http, https and file are)")


def content_problem(path, name):
    """For a file named like an archive: why its first bytes are not what the name promises, or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        return None
    return content_mismatch(name, head)


# ---------------------------------------------------------------------------------------------------------------------
# one file


def _link_or_copy(source, target):
    """Put source's content under target atomically: hard link if possible, else copy."""
    tmp = target.with_name(f".{names.fit(target.name, 48)}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _from_cache(cache_dir, name, checksum, target):
    cached = Path(cache_dir) / name
    if not cached.is_file() or content_problem(cached, name):
        return False
    if checksum is not None and not has_checksum(cached, checksum):
        return False
    _link_or_copy(cached, target)
    if checksum is not None:
        remember_verified(target, checksum)
    return True


def _to_cache(cache_dir, name, target):
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if not (cache_dir / name).exists():
            _link_or_copy(target, cache_dir / name)
    except OSError:
        pass  # a read-only or full cache must not fail the download


def download_one(url, out_dir, checksum=None, retries=3, cache_dir=None, backoff=1.0, timeout=60.0, on_bytes=None,
                 deadline=DEADLINE, reserved=()):
    """Fetch one URL into out_dir; return an :class:`Outcome` (status "missing" with a reason on failure).

    checksum: ``(algorithm, hex digest)`` or None; deadline: seconds for the whole file (all attempts); reserved:
    names of out_dir that no URL may be saved under (besides missing.csv). A file named like an archive
    (``.rar``, ``.zip``, ``.tar.gz`` …) must start as one. Never raises for network or content problems.
    """
    try:
        name = file_name_for(url, reserved)
    except PermanentError as error:
        return Outcome(url, "", "missing", reason=str(error))
    out_dir = Path(out_dir)
    target, part = out_dir / name, out_dir / f"{name}{names.PART_SUFFIX}"
    for path in (target, part):
        if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
            what = "a folder" if path.is_dir() else "something that is not a plain file"
            return Outcome(url, name, "missing", reason=f"{path} is {what}: nothing is downloaded over it")
    if target.is_file():
        if not content_problem(target, name) and (checksum is None or has_checksum(target, checksum)):
            return Outcome(url, name, "present", target)
        target.unlink()  # corrupt: it must not stand under the final name
    out_dir.mkdir(parents=True, exist_ok=True)
    if cache_dir is not None and _from_cache(cache_dir, name, checksum, target):
        return Outcome(url, name, "cached", target)

    failures, attempts, restarted = 0, 0, False
    max_attempts = max(20, 5 * (retries + 1))
    clock = Clock(deadline)
    while True:
        before = _size(part)
        resumed = before > 0
        attempts += 1
        try:
            _fetch(url, part, timeout, on_bytes, clock)
            problem = content_problem(part, name)
            if problem is not None:
                part.unlink(missing_ok=True)
                raise PermanentError(problem)
            if checksum is not None:
                got = file_digest(part, checksum[0])
                if got != checksum[1]:
                    part.unlink(missing_ok=True)
                    message = f"{checksum[0]} mismatch: expected {checksum[1]}, got {got}"
                    if resumed and not restarted:  # the old .part may have been the bad bit: one clean retry
                        restarted = True
                        raise TransientError(message)
                    raise PermanentError(message)
            os.replace(part, target)
            if checksum is not None:
                remember_verified(target, checksum)
            break
        except PermanentError as error:
            return Outcome(url, name, "missing", reason=str(error))
        except TransientError as error:
            progressed = _size(part) > before
            if not progressed:
                failures += 1
            if failures > retries or attempts >= max_attempts:
                return Outcome(url, name, "missing", reason=f"gave up after {attempts} attempts: {error}")
            time.sleep(max(0.0, min(backoff * (2 ** (failures - 1)) if not progressed else 0, clock.left())))
            try:
                clock.check(part)
            except DeadlineError as late:
                return Outcome(url, name, "missing", reason=f"{late} (last: {error})")
    if cache_dir is not None:
        _to_cache(cache_dir, name, target)
    return Outcome(url, name, "downloaded", target)


# ---------------------------------------------------------------------------------------------------------------------
# many files


def write_missing(out_dir, missing):
    """Write ``out_dir/missing.csv`` (url,reason) atomically; return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MISSING_CSV
    tmp = path.with_name(names.bookkeeping(MISSING_CSV, "tmp"))
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "reason"])
        writer.writerows(missing)
    os.replace(tmp, path)
    return path


def download_all(urls, out_dir, checksums=None, workers=4, retries=3, cache_dir=None, backoff=1.0, timeout=60.0,
                 progress=None, deadline=DEADLINE, reserved=()):
    """Download every URL into out_dir in parallel; write missing.csv.

    checksums: ``{file name: (algorithm, hex digest)}``. Returns ``(done, missing)``: the :class:`Outcome` of every
    file that is now under its final name, and ``(url, reason)`` pairs for the rest. progress: show a tqdm bar
    (None: only on a terminal). deadline and reserved: see :func:`download_one`.
    """
    from tqdm import tqdm

    urls = list(urls)
    checksums = checksums or {}
    out_dir = Path(out_dir)
    missing, jobs, names = [], [], {}
    for url in dict.fromkeys(urls):  # drop repeated URLs, keep order
        try:
            name = file_name_for(url, reserved)
        except PermanentError as error:
            missing.append((url, str(error)))
            continue
        if name in names:
            missing.append((url, f"file name {name!r} is also the name of {names[name]}"))
            continue
        names[name] = url
        jobs.append((url, name))

    done = []
    lock = threading.Lock()
    received = [0]
    disable = None if progress is None else not progress
    with tqdm(total=len(jobs), unit="file", desc="download", disable=disable) as bar:
        def on_bytes(count):
            with lock:
                received[0] += count

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(download_one, url, out_dir, checksums.get(name), retries, cache_dir, backoff,
                                   timeout, on_bytes, deadline, reserved) for url, name in jobs]
            for future in as_completed(futures):
                outcome = future.result()
                if outcome.ok:
                    done.append(outcome)
                else:
                    missing.append((outcome.url, outcome.reason))
                bar.set_postfix_str(f"{received[0] / 1e6:.1f} MB, {len(missing)} missing", refresh=False)
                bar.update(1)
    order = {url: index for index, url in enumerate(urls)}
    done.sort(key=lambda outcome: order[outcome.url])
    missing.sort(key=lambda item: order.get(item[0], len(order)))
    write_missing(out_dir, missing)
    return done, missing


def run(args):
    urls = read_url_list(args.url_list)
    checksums = read_checksums(args.checksums) if args.checksums else None
    if not urls:
        raise UserError(f"{args.url_list}: holds no URL")
    done, missing = download_all(urls, args.out_dir, checksums=checksums, workers=args.workers,
                                 retries=args.retries, cache_dir=args.cache, backoff=args.backoff,
                                 timeout=args.timeout, deadline=args.deadline)
    counts = {}
    for outcome in done:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(done)} of {len(urls)} files in {args.out_dir}" + (f" ({detail})" if detail else "")
          + (f"; {len(missing)} missing, see {Path(args.out_dir) / MISSING_CSV}" if missing else ""))
    if not done:
        print(f"error: nothing could be downloaded; reasons in {Path(args.out_dir) / MISSING_CSV}",
              file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("download", help="resumable, checksummed downloads with a missing report",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("url_list", type=arguments.input_file, help="text file, one URL a line (# comments)")
    parser.add_argument("out_dir", type=arguments.output_dir,
                        help="directory to save into (missing.csv is written there)")
    parser.add_argument("--checksums", metavar="FILE", type=arguments.input_file,
                        help="sha256sum/md5sum output for the files")
    parser.add_argument("--workers", type=arguments.count(1), default=4, help="parallel downloads (default 4)")
    parser.add_argument("--retries", type=arguments.count(0), default=3,
                        help="retries per file without progress (default 3)")
    parser.add_argument("--cache", metavar="DIR", type=arguments.output_dir,
                        help="shared cache directory: reuse files found there, add new ones")
    parser.add_argument("--backoff", type=arguments.number(minimum=0), default=1.0,
                        help="first retry delay in seconds, doubled each time")
    parser.add_argument("--timeout", type=arguments.number(above=0), default=60.0,
                        help="network timeout in seconds (default 60)")
    add_deadline_argument(parser)
    parser.set_defaults(func=run)


def add_deadline_argument(parser):
    parser.add_argument("--deadline", type=arguments.number(above=0), default=DEADLINE,
                        help=f"seconds one file may take, all attempts together (default {DEADLINE:g}); "
                             "what came so far stays in NAME.part for a rerun")
