"""``python -m prep <verb> …`` — one verb per preparation stage.

Each stage module exposes ``add_parser(subparsers)``, which registers its verb and sets ``func`` to a callable
taking the parsed arguments and returning an exit status.
"""
import argparse
import importlib
import sys

from prep import UserError

# verb modules, imported lazily so `python -m prep --help` stays fast and one broken optional backend
# does not take every verb down
STAGE_MODULES = [
    "prep.index",
    "prep.datasets.synthetic",
    "prep.download",
    "prep.fetch",
    "prep.archives",
    "prep.arrange",
    "prep.frames",
    "prep.flow",
    "prep.annotations",
    "prep.check",
]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m prep", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as missing:
            if missing.name == name:  # stage not written yet
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
