"""Extract every archive ``prep fetch`` found for a dataset into ``OUT_DIR/<archive stem>/``.

``python -m prep unpack DATASET SOURCES.json OUT_DIR [--workers N]`` — nested archives (HMDB51's RAR of RARs) and
whether a failed archive is fatal are facts of the dataset (``prep.datasets.<name>``); extraction itself, with its
safety checks, is :mod:`prep.base.archives`. Failures are listed in ``OUT_DIR/unpack_failed.csv``.
"""
import csv
from pathlib import Path

from prep.base import arguments
from prep.base.archives import UNPACK_REPORT, add_limit_arguments, limits_from, unpack
from prep.base.atomic import atomic_file
from prep.base.errors import UserError
from prep.base.sources import read_sources
from prep.datasets import dataset_module, real_datasets


def run(args):
    sources = read_sources(args.sources)
    module = dataset_module(args.dataset)
    failed = unpack(sources["archives"], args.out_dir, nested=module.FACTS.nested_archives,
                    tolerate_failures=module.FACTS.tolerate_missing, workers=args.workers,
                    limits=limits_from(args))
    report = Path(args.out_dir) / UNPACK_REPORT
    with atomic_file(report, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["archive", "reason"])
        writer.writerows(failed)
    print(f"unpack {args.dataset}: {len(sources['archives']) - len(failed)} of {len(sources['archives'])} archives "
          f"extracted into {args.out_dir}" + (f"; {len(failed)} failed, see {report}" if failed else ""))
    if sources["archives"] and len(failed) == len(sources["archives"]):
        raise UserError(f"none of the archives could be extracted; reasons in {report}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("unpack", help="extract every archive `prep fetch` found for a dataset",
                                   description="Extract every archive of a `prep fetch` sources file into "
                                               "OUT_DIR/<archive stem>/ (nested archives for HMDB51).")
    parser.add_argument("dataset", choices=real_datasets())
    parser.add_argument("sources", type=arguments.input_file, help="sources JSON written by `prep fetch`")
    parser.add_argument("out_dir", type=arguments.output_dir, help="directory to extract into")
    parser.add_argument("--workers", type=arguments.count(1), default=1,
                        help="archives extracted in parallel (default 1)")
    add_limit_arguments(parser)
    parser.set_defaults(func=run)
