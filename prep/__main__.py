"""``python -m prep <verb> …`` — one verb per preparation stage.

Each stage module exposes ``add_parser(subparsers)``, which registers its verb and sets ``func`` to a callable
taking the parsed arguments and returning an exit status.
"""
import importlib
import sys

from prep.base.arguments import Parser
from prep.base.errors import UserError, one_line
from prep.base.diskspace import disk_full_message, is_disk_full

# verb modules, imported lazily so `python -m prep --help` stays fast and one broken optional backend
# does not take every verb down
STAGE_MODULES = [
    "prep.index",
    "prep.datasets.synthetic",
    "prep.base.download",
    "prep.fetch",
    "prep.base.archives",
    "prep.unpack",
    "prep.arrange",
    "prep.frames",
    "prep.reencode",
    "prep.flow",
    "prep.annotations",
    "prep.check",
    "prep.base.config",
]


# verbs run once per shard in their own process: import only their module (no pandas), ~0.5 s less per start
SINGLE_VERB_MODULES = {"frames": "prep.frames", "reencode": "prep.reencode", "flow": "prep.flow"}


def build_parser(verb=None):
    parser = Parser(prog="python -m prep", description=__doc__.splitlines()[0])  # one-line errors, verbs too
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in [SINGLE_VERB_MODULES[verb]] if verb in SINGLE_VERB_MODULES else STAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as missing:
            if missing.name == name:  # stage not written yet
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(argv[0] if argv else None).parse_args(argv)
    except SystemExit as done:  # --help (0) or a bad value (2, its line printed): a status, also in-process
        return done.code
    return run_parsed(args)


def run_parsed(args):
    """Run a parsed verb; an expected problem is one bounded line on stderr and exit status 2."""
    try:
        return args.func(args) or 0
    except UserError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:
        if not is_disk_full(error):
            raise
        print(f"error: {one_line(disk_full_message(error))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
