"""Pretrained weights named by a recipe: fetched once into a cache, verified, converted, loaded strictly.

Recipe key (issue 11):  pretrained: {url: URL or path, sha256: HEX, source: torchvision | pytorch_i3d | mmaction2}
                        or null (train from the reference initialisation).

sha256 is the file's full 64-digit digest, or a prefix of it of at least 8 hex digits: torchvision publishes only
the first 8 digits, in its file names (resnet50-0676ba61.pth). A prefix pins the file against corruption and
mix-ups but not against a deliberately forged file, so only a full digest lets a checkpoint that torch.load's
``weights_only=True`` refuses (pickled non-tensor objects, as some training frameworks save) be unpickled at all.

    python -m train.models fetch URL SHA256 OUT   # the Snakemake rule `pretrained_weights` runs this

downloads URL with the project's downloader (resumes a .part, checks the digest, renames into place only when
complete) to OUT = CACHE/<sha256>/<file name of the URL>; :func:`cached_file` computes that path.
:func:`apply_pretrained` is what training calls: after building the model, before DDP wrapping, and never when
resuming (a resumed run's checkpoint holds the weights, and its record of them).
"""
import argparse
import hashlib
import pickle
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch

from prep.download import download_one, file_name_for

from .convert import HEAD_KEYS, SOURCES, ConversionError, load_pretrained

MIN_SHA256_PREFIX = 8
REMOTE_SCHEMES = ("http", "https", "file")


class PretrainedError(Exception):
    """A pretrained file that cannot be used: the message is one line naming the file (or URL) and the problem."""


def pretrained_spec(settings):
    """The recipe's ``pretrained`` dict, checked; None when the recipe has none (``pretrained: null``)."""
    spec = settings.get("pretrained")
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"url", "sha256", "source"}:
        raise PretrainedError(f"recipe key pretrained must be null or {{url, sha256, source}}, got {spec!r}")
    sha256 = checked_sha256(spec["sha256"], spec["url"])
    if spec["source"] not in SOURCES:
        raise PretrainedError(f"pretrained source of {spec['url']}: {spec['source']!r} is not one of "
                              f"{', '.join(SOURCES)}")
    return {"url": str(spec["url"]), "sha256": sha256, "source": spec["source"]}


def checked_sha256(value, url):
    """The digest in lower case: a full sha256 or a prefix of at least MIN_SHA256_PREFIX hex digits."""
    sha256 = str(value).lower()
    if not re.fullmatch(r"[0-9a-f]{%d,64}" % MIN_SHA256_PREFIX, sha256):
        raise PretrainedError(f"pretrained sha256 of {url}: expected {MIN_SHA256_PREFIX} to 64 hex digits (a full "
                              f"digest or its prefix), got {value!r}")
    return sha256


def is_remote(url):
    return urlparse(str(url)).scheme.lower() in REMOTE_SCHEMES


def cached_file(spec, cache_dir):
    """Where a recipe's weights live: CACHE/<sha256>/<name> for a URL (one download per distinct file, whichever
    recipes share it), the path itself for a local path."""
    if not is_remote(spec["url"]):
        return Path(spec["url"]).expanduser()
    return Path(cache_dir) / spec["sha256"] / file_name_for(spec["url"])


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path, expected):
    """Raise PretrainedError unless the file's sha256 is `expected` (full digest) or starts with it (prefix)."""
    try:
        digest = sha256_of(path)
    except FileNotFoundError:
        raise PretrainedError(f"{path}: no such file (fetch the weights first: snakemake {path})") from None
    if not digest.startswith(expected):
        raise PretrainedError(f"{path}: sha256 {digest[:len(expected)]} does not match the recipe's {expected} "
                              f"({Path(path).stat().st_size} bytes: a truncated or corrupt download, or another file; "
                              "delete it and fetch again)")


def read_checkpoint(path, full_digest):
    """The checkpoint's contents: ``torch.load(weights_only=True)``; a pickle that needs more is unpickled only when
    its full sha256 was verified (the recipe pins exactly this file)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not full_digest:
            first = str(error).strip().splitlines()[0]
            raise PretrainedError(f"{path}: holds more than tensors ({first}); give the full sha256 in the recipe "
                                  "to allow unpickling it") from None
    except Exception as error:  # torch raises RuntimeError / EOFError / ... for files that are not checkpoints
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise PretrainedError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    return torch.load(path, map_location="cpu", weights_only=False)


def apply_pretrained(model, settings, path=None):
    """Load the recipe's pretrained weights from the local file `path` into `model` (strict, see convert.py).

    Returns the record for the results, ``{url, sha256, source, head}`` (head: "loaded", or "reinitialised" when
    the checkpoint's classifier is for another number of classes, or ImageNet's), or None for ``pretrained: null``.
    Raises PretrainedError with a one-line message.
    """
    spec = pretrained_spec(settings)
    if spec is None:
        if path is not None:
            raise PretrainedError(f"{path}: given as pretrained weights, but the recipe says pretrained: null")
        return None
    if path is None:
        if is_remote(spec["url"]):
            raise PretrainedError(f"{spec['url']}: not fetched; run the Snakemake rule pretrained_weights or "
                                  "python -m train.models fetch, and pass --pretrained PATH")
        path = cached_file(spec, None)
    verify_sha256(path, spec["sha256"])
    state = read_checkpoint(path, full_digest=len(spec["sha256"]) == 64)
    if not isinstance(state, dict):
        raise PretrainedError(f"{path}: holds a {type(state).__name__}, not a state dict")
    try:
        initialised = load_pretrained(model, state, spec["source"], settings["arch"])
    except (ConversionError, ValueError) as error:
        raise PretrainedError(f"{path}: {error}") from None
    head = "reinitialised" if any(k in HEAD_KEYS for k in initialised) else "loaded"
    return {**spec, "head": head}


def fetch(url, sha256, out, retries=3, timeout=60.0):
    """Download url to `out` (its name must be the URL's file name) through the project's downloader, resuming a
    partial ``.part``; the result is verified against sha256 (full digest or prefix) before it counts."""
    out = Path(out)
    if out.name != file_name_for(url):
        raise PretrainedError(f"{out}: must be named {file_name_for(url)!r} after the URL {url}")
    checksum = ("sha256", sha256) if len(sha256) == 64 else None  # a prefix is checked below
    outcome = download_one(url, out.parent, checksum=checksum, retries=retries, timeout=timeout)
    if not outcome.ok:
        raise PretrainedError(f"{url}: {outcome.reason}")
    try:
        verify_sha256(out, sha256)
    except PretrainedError:
        out.unlink(missing_ok=True)  # a wrong file must not stand under the final name
        raise
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.models",
                                     description="fetch a recipe's pretrained weights into the cache")
    sub = parser.add_subparsers(dest="verb", required=True)
    fetch_parser = sub.add_parser("fetch", help="download URL to OUT (resumable), verify its sha256")
    fetch_parser.add_argument("url")
    fetch_parser.add_argument("sha256", help="full digest or a prefix of at least 8 hex digits")
    fetch_parser.add_argument("out", help="CACHE/<sha256>/<file name of the URL>")
    fetch_parser.add_argument("--retries", type=int, default=3)
    fetch_parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        path = fetch(args.url, checked_sha256(args.sha256, args.url), args.out, args.retries, args.timeout)
    except PretrainedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{path}: sha256 verified")
    return 0
