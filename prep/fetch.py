"""Get a real dataset's files: download its archives (or take the copy already on disk) and say where they are.

``python -m prep fetch DATASET OUT.json --sources JSON --downloads DIR [--cache DIR] [--workers N] [--retries N]``

``--sources`` is the dataset's entry of the config's ``sources:`` section, as JSON:

- ``urls``: archive URLs (UCF101: the video RAR and the split zip; HMDB51: the video RAR and the split RAR).
- ``checksums``: ``{file name: hex digest}`` (md5 / sha1 / sha256 / sha512, told by the length).
- ``local``: archives or extracted trees already on disk (one path or a list); when given, ``urls`` and
  ``link_lists`` are not downloaded.
- Kinetics-400 only: ``annotations`` (the CSVs, or archives holding them: URLs or paths; always fetched),
  ``link_lists`` (PaddleVideo-style lists of archive URLs, one a line) and ``max_missing_fraction`` (read by
  ``prep arrange``).

Downloads go to DOWNLOADS (resumable: ``NAME.part`` files stay there when a run is interrupted), through the shared
cache when ``--cache`` is given (see :mod:`prep.base.download`). What could not be had is in ``DOWNLOADS/missing.csv``.
UCF101 and HMDB51 need every file; for Kinetics-400 a failed archive only makes clips missing, which ``prep arrange``
counts against ``max_missing_fraction``.

OUT.json: ``{"dataset", "archives": [paths], "trees": [directories], "files": [other files, e.g. CSVs],
"failed": [[url, reason]]}`` — paths absolute, for ``prep unpack`` and ``prep arrange``.
"""
import json
import os
from pathlib import Path

from prep.base import arguments
from prep.base.archives import archive_kind
from prep.base.atomic import atomic_file
from prep.base.download import (DEADLINE, MISSING_CSV, add_deadline_argument, content_problem, download_all,
                                has_checksum)
from prep.base.errors import UserError
from prep.base.sources import as_list, checksums_from_config, is_url, read_url_list
from prep.datasets import dataset_module, real_datasets

LIST_DIR = "lists"  # DOWNLOADS/lists/: the downloaded link lists (names may clash with archives otherwise)


def _local_paths(paths, checksums, what):
    """Check local sources exist (and match their checksum, if one is given); split into files and trees."""
    files, trees = [], []
    for text in paths:
        path = Path(os.path.expanduser(text)).resolve()
        if path.is_dir():
            trees.append(str(path))
        elif path.is_file():
            problem = content_problem(path, path.name)
            if problem is not None:
                raise UserError(f"{what}: {path}: {problem}")
            checksum = checksums.get(path.name)
            if checksum is not None and not has_checksum(path, checksum):
                raise UserError(f"{what}: {path}: {checksum[0]} does not match sources.checksums[{path.name!r}]; "
                                f"the copy is damaged or another version")
            files.append(str(path))
        else:
            raise UserError(f"{what}: {path} does not exist")
    return files, trees


def _download(urls, out_dir, checksums, options):
    done, missing = download_all(urls, out_dir, checksums=checksums, workers=options["workers"],
                                 retries=options["retries"], cache_dir=options.get("cache"),
                                 timeout=options.get("timeout", 60.0), backoff=options.get("backoff", 1.0),
                                 deadline=options.get("deadline", DEADLINE), reserved=options.get("reserved", ()))
    return [str(outcome.path.resolve()) for outcome in done], missing


def _fetch_named(keys, dataset, sources, downloads, checksums, options):
    """Files of the ``sources:`` keys a dataset always fetches (the Kinetics CSVs): ``(files, trees)``; every one
    is needed."""
    files, trees = [], []
    for key in keys:
        entries = as_list(sources.get(key))
        if not entries:
            raise UserError(f"sources.{dataset}.{key}: empty; these files are needed for labels and splits")
        remote = [e for e in entries if is_url(e)]
        local_files, local_trees = _local_paths([e for e in entries if not is_url(e)], checksums,
                                                f"sources.{dataset}.{key}")
        files += local_files
        trees += local_trees
        if remote:
            got, missing = _download(remote, downloads / key, checksums, options)
            if missing:
                raise UserError(f"sources.{dataset}.{key}: could not download "
                                + "; ".join(f"{url}: {reason}" for url, reason in missing))
            files += got
    return files, trees


def _link_list_urls(key, dataset, sources, downloads, options):
    """The archive URLs of the lists named by ``sources.<dataset>.<key>`` (URLs are downloaded first)."""
    link_lists = as_list(sources.get(key)) if key else []
    remote = [u for u in link_lists if is_url(u)]
    got, missing = _download(remote, downloads / LIST_DIR, {}, options) if remote else ([], [])
    if missing:
        raise UserError(f"sources.{dataset}.{key}: could not download "
                        + "; ".join(f"{url}: {reason}" for url, reason in missing))
    return [url for path in got + [u for u in link_lists if not is_url(u)] for url in read_url_list(path)]


def fetch(dataset, sources, downloads, workers=4, retries=3, cache=None, timeout=60.0, backoff=1.0,
          deadline=DEADLINE):
    """Download (or find locally) the files of dataset; return the dict written to OUT.json."""
    if dataset not in real_datasets():
        raise UserError(f"fetch: {dataset!r} is not a real dataset ({', '.join(real_datasets())})")
    module = dataset_module(dataset)
    # the folders fetch makes in DOWNLOADS (link lists, the source_lists' files): no download may take their names
    options = {"workers": workers, "retries": retries, "cache": cache, "timeout": timeout, "backoff": backoff,
               "deadline": deadline, "reserved": (LIST_DIR, *module.FACTS.source_lists)}
    checksums = checksums_from_config(sources.get("checksums"), f"sources.{dataset}.checksums")
    downloads = Path(downloads)
    local = as_list(sources.get("local"))
    files, trees = _fetch_named(module.FACTS.source_lists, dataset, sources, downloads, checksums, options)
    failed = []
    if local:
        local_files, local_trees = _local_paths(local, checksums, f"sources.{dataset}.local")
        files += local_files
        trees += local_trees
    else:
        urls = as_list(sources.get("urls")) + _link_list_urls(module.FACTS.link_lists, dataset, sources, downloads, options)
        if not urls:
            raise UserError(f"sources.{dataset}: neither urls nor local paths given")
        got, failed = _download(urls, downloads, checksums, options)
        files += got
        if failed and not module.FACTS.tolerate_missing:
            raise UserError(f"sources.{dataset}: could not download "
                            + "; ".join(f"{url}: {reason}" for url, reason in failed)
                            + f" (details in {downloads / MISSING_CSV}; rerun to resume)")
        if not got:
            raise UserError(f"sources.{dataset}: none of the {len(urls)} archives could be downloaded "
                            f"(reasons in {downloads / MISSING_CSV})")

    archives = [f for f in files if archive_kind(f) is not None and not f.lower().endswith(".csv")]
    plain = [f for f in files if f not in archives]
    return {"dataset": dataset, "archives": archives, "trees": trees, "files": plain,
            "failed": [list(item) for item in failed]}


def run(args):
    try:
        sources = json.loads(args.sources)
    except ValueError as error:
        raise UserError(f"--sources: not JSON ({error})") from None
    if not isinstance(sources, dict):
        raise UserError("--sources: expected a JSON object (the dataset's entry of the config's sources: section)")
    result = fetch(args.dataset, sources, args.downloads, workers=args.workers, retries=args.retries,
                   cache=args.cache or None, timeout=args.timeout, backoff=args.backoff, deadline=args.deadline)
    with atomic_file(args.out) as handle:
        json.dump(result, handle, indent=1)
    print(f"fetch {args.dataset}: {len(result['archives'])} archives, {len(result['trees'])} trees, "
          f"{len(result['files'])} other files" + (f"; {len(result['failed'])} archives could not be downloaded "
                                                   f"(see {Path(args.downloads) / MISSING_CSV})"
                                                   if result["failed"] else "") + f" → {args.out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("fetch", help="download a real dataset's archives (or find a local copy)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=real_datasets())
    parser.add_argument("out", type=arguments.output_file,
                        help="JSON file naming the archives, trees and files obtained")
    parser.add_argument("--sources", required=True, help="the dataset's sources: entry of the config, as JSON")
    parser.add_argument("--downloads", required=True, type=arguments.output_dir,
                        help="directory to download into (resumable .part files)")
    parser.add_argument("--cache", type=arguments.output_dir,
                        help="shared cache directory of archives (reused by name and checksum)")
    parser.add_argument("--workers", type=arguments.count(1), default=4, help="parallel downloads (default 4)")
    parser.add_argument("--retries", type=arguments.count(0), default=3,
                        help="retries per file without progress (default 3)")
    parser.add_argument("--timeout", type=arguments.number(above=0), default=60.0,
                        help="network timeout in seconds (default 60)")
    parser.add_argument("--backoff", type=arguments.number(minimum=0), default=1.0,
                        help="first retry delay in seconds (default 1)")
    add_deadline_argument(parser)
    parser.set_defaults(func=run)
