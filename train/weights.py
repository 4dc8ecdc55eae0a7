"""A recipe's pretrained weights as files: the ``pretrained`` key checked, where its file is cached, its digest, and
``python -m train.weights fetch``. Pure Python (no torch), so the Snakefile can plan with it; loading the weights into
a model is train/models/pretrained.py.

Recipe key (issue 11):  pretrained: {url: URL or path, sha256: HEX or null, source: torchvision | pytorch_i3d |
                        mmaction2}, or null (train from the reference initialisation).

sha256 is the file's full 64-digit digest, or a prefix of at least 8 hex digits: torchvision publishes only the first
8, in its file names (resnet50-0676ba61.pth). A prefix pins the file against corruption and mix-ups but not against a
deliberately forged one. null pins nothing (pytorch-i3d publishes no digest): the file is what its URL serves, and the
record of a run carries the digest of the file it actually loaded.

    python -m train.weights fetch URL OUT [--sha256 HEX]     # what the Snakemake rule pretrained_weights runs

downloads URL with the project's downloader (resumes a .part, checks a full digest itself, renames into place only
when complete; a prefix is checked here, and a file that fails it is removed) to OUT, which :func:`cached_file` names:
CACHE/<sha256>/<file name of the URL>, or CACHE/url-<first 16 digits of the URL's sha256>/<name> without a digest.
"""
import hashlib
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

from prep.base import arguments
from prep.base.download import download_one, file_digest, file_name_for

MIN_SHA256_PREFIX = 8
REMOTE_SCHEMES = ("http", "https", "file")
SPEC_KEYS = {"url", "sha256", "source"}
# a file with no published sha256 can be pinned by its git blob id instead (what `git ls-tree` lists for a file in
# the publisher's repository: sha1 of b"blob <size>\0" + content), e.g. pytorch-i3d's models/*.pt
OPTIONAL_SPEC_KEYS = {"git_blob"}


class PretrainedError(Exception):
    """Weights that cannot be used: the message is one line naming the file (or URL) and the problem."""


def checked_sha256(value, url):
    """The digest in lower case (a full sha256 or a prefix of >= MIN_SHA256_PREFIX hex digits), or None."""
    if value is None:
        return None
    sha256 = str(value).lower()
    if not re.fullmatch(r"[0-9a-f]{%d,64}" % MIN_SHA256_PREFIX, sha256):
        raise PretrainedError(f"pretrained sha256 of {url}: expected {MIN_SHA256_PREFIX} to 64 hex digits (a full "
                              f"digest or its prefix) or null, got {value!r}")
    return sha256


def pretrained_spec(settings):
    """The run's ``pretrained`` dict, checked; None when it has none (``pretrained: null``)."""
    spec = settings.get("pretrained")
    if spec is None:
        return None
    if not isinstance(spec, dict) or not SPEC_KEYS <= set(spec) <= SPEC_KEYS | OPTIONAL_SPEC_KEYS:
        raise PretrainedError(f"recipe key pretrained must be null or {{url, sha256, source[, git_blob]}}, got {spec!r}")
    checked = {"url": str(spec["url"]), "sha256": checked_sha256(spec["sha256"], spec["url"]), "source": spec["source"]}
    if spec.get("git_blob") is not None:
        blob = str(spec["git_blob"]).lower()
        if not re.fullmatch(r"[0-9a-f]{40}", blob):
            raise PretrainedError(f"pretrained git_blob of {spec['url']}: expected 40 hex digits, got {spec['git_blob']!r}")
        checked["git_blob"] = blob
    return checked


def is_remote(url):
    return urlparse(str(url)).scheme.lower() in REMOTE_SCHEMES


def cached_file(spec, cache_dir):
    """Where a run's weights are read from: the cache entry of a URL (one download per distinct file, whichever runs
    share it), or the local path itself."""
    if not is_remote(spec["url"]):
        return Path(spec["url"]).expanduser()
    folder = spec["sha256"] or (f"git-{spec['git_blob']}" if spec.get("git_blob") else
                                "url-" + hashlib.sha256(spec["url"].encode()).hexdigest()[:16])
    return Path(cache_dir) / folder / file_name_for(spec["url"])


def git_blob_of(path):
    """The git blob id of a file: sha1 of ``blob <size>\\0`` followed by its bytes."""
    return file_digest(path, "sha1", prefix=f"blob {Path(path).stat().st_size}\0".encode())


def verify_git_blob(path, expected):
    """PretrainedError unless the file's git blob id is `expected` (None: anything)."""
    if expected and (found := git_blob_of(path)) != expected:
        raise PretrainedError(f"{path}: git blob {found} does not match the recipe's {expected} "
                              f"({Path(path).stat().st_size} bytes: a truncated or corrupt download, or another file; "
                              "delete it and fetch again)")


def verify_sha256(path, expected):
    """The file's full sha256; PretrainedError unless it is `expected` or starts with it (None: anything)."""
    try:
        digest = file_digest(path, "sha256")
    except FileNotFoundError:
        raise PretrainedError(f"{path}: no such file (fetch the weights first: snakemake {path})") from None
    if expected and not digest.startswith(expected):
        raise PretrainedError(f"{path}: sha256 {digest[:len(expected)]} does not match the recipe's {expected} "
                              f"({Path(path).stat().st_size} bytes: a truncated or corrupt download, or another file; "
                              "delete it and fetch again)")
    return digest


def fetch(url, sha256, out, retries=3, timeout=60.0, git_blob=None):
    """Download url to `out` (named as the URL's file) through the project's downloader, resuming a partial ``.part``;
    the file counts only once it matches sha256 (full digest or prefix; None: as served) and git_blob (if given)."""
    out = Path(out)
    if out.name != file_name_for(url):
        raise PretrainedError(f"{out}: must be named {file_name_for(url)!r} after the URL {url}")
    checksum = ("sha256", sha256) if sha256 and len(sha256) == 64 else None  # a prefix is checked below
    outcome = download_one(url, out.parent, checksum=checksum, retries=retries, timeout=timeout)
    if not outcome.ok:
        raise PretrainedError(f"{url}: {outcome.reason}")
    try:
        verify_sha256(out, sha256)
        verify_git_blob(out, git_blob)
    except PretrainedError:
        out.unlink(missing_ok=True)  # a wrong file must not stand under the final name
        raise
    return out


def main(argv=None):
    parser = arguments.Parser(prog="python -m train.weights", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    fetch_parser = sub.add_parser("fetch", help="download URL to OUT (resumable) and check its sha256")
    fetch_parser.add_argument("url")
    fetch_parser.add_argument("out", help="the cache entry: CACHE/<sha256>/<file name of the URL>")
    fetch_parser.add_argument("--sha256", help="full digest or a prefix of at least 8 hex digits (default: none)")
    fetch_parser.add_argument("--git-blob", help="the file's git blob id (40 hex digits), where no sha256 is published")
    fetch_parser.add_argument("--retries", type=arguments.count(0), default=3)
    fetch_parser.add_argument("--timeout", type=arguments.number(above=0), default=60.0)
    args = parser.parse_args(argv)
    try:
        spec = pretrained_spec({"pretrained": {"url": args.url, "sha256": args.sha256, "source": None,
                                               "git_blob": args.git_blob}})
        path = fetch(args.url, spec["sha256"], args.out, args.retries, args.timeout, spec.get("git_blob"))
    except PretrainedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    checked = [name for name, value in (("sha256", args.sha256), ("git blob", args.git_blob)) if value]
    print(f"{path}: " + (" and ".join(checked) + " checked" if checked else "fetched (no checksum to check)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
