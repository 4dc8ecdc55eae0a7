"""Configuration from outside, bounded: YAML files read with their alias expansion counted before anything walks
them, and a configuration checked against its schema with errors that name the key.

A YAML alias makes one value stand in many places: ``a: &a [1, 2]``, ``b: [*a, *a]``. Nine levels of nine aliases
are 387 million values in a 1 KB file; the parser shares them, but whatever walks the result (a merge, a schema
check, an error message that prints the value) expands them, for minutes and gigabytes. So a configuration may
hold at most :data:`MAX_BYTES` of text and :data:`MAX_VALUES` values once every alias is expanded; beyond that, one
line names the file and the key.

Snakemake reads ``--configfile`` / ``--configfiles`` files and ``--config`` values itself, before the Snakefile runs,
and merges them with ``snakemake.utils.update_config``, which copies every mapping an alias repeats (then the workflow
deep-copies the result, and ``configfile:`` merges it again): a bomb of aliased mappings is expanded there, before any
code of this workflow can look. :func:`check_sources` checks what Snakemake will read without building it: the
Snakefile calls it first (a bomb of lists or in ``config.yaml`` stops there, naming the file), and ``python -m prep
check-config`` runs it before Snakemake does (every bomb).
"""
import json
import os
import stat
from pathlib import Path

from prep.base.errors import UserError, one_line

MAX_BYTES = 4 << 20  # config.yaml and every recipe are a few KB
MAX_VALUES = 200_000  # scalars, lists and mappings, aliases expanded (config.yaml: about 1500)


class ConfigError(UserError):
    """A configuration that cannot be used: unreadable, too large, an alias bomb, or against its schema."""


def _children_of_node(node):
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [(key.value if isinstance(key, yaml.ScalarNode) else "?", value) for key, value in node.value]
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    return []


def _children_of_value(value):
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, (list, tuple)):
        return list(enumerate(value))
    return []


def check_expansion(root, source, children=_children_of_value, limit=MAX_VALUES, prefix=()):
    """Count the values of ``root`` with every shared (aliased) value counted where it appears, in time linear in
    the distinct values; raise :class:`ConfigError` naming the deepest key whose value alone passes ``limit``, or
    a key whose value contains itself. ``children``: how to list a value's ``(key, value)`` pairs; ``prefix``: the
    keys above ``root`` (the key of a ``--config`` value)."""
    sizes, open_ = {}, set()

    def size(value, path):
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ConfigError(f"{source}: key {_dotted(path)!r} contains itself (a recursive YAML alias)")
        open_.add(key)
        total = 1 + sum(size(child, (*path, name)) for name, child in children(value))
        open_.discard(key)
        sizes[key] = total
        return total

    try:
        total = size(root, prefix)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    if total <= limit:
        return total
    path, value = prefix, root
    while True:  # down the heaviest branch while it is most of its parent: to the value whose aliases multiply
        heaviest = max(children(value), key=lambda pair: sizes[id(pair[1])], default=None)
        if heaviest is None or sizes[id(heaviest[1])] <= max(limit, sizes[id(value)] // 2):
            break
        path, value = (*path, heaviest[0]), heaviest[1]
    where = f"key {_dotted(path)!r}" if path else "the whole configuration"
    raise ConfigError(f"{source}: {where} holds {sizes[id(value)]:,} values once its YAML aliases are expanded "
                      f"(at most {limit:,}; an alias bomb?)")


def _dotted(path):
    return ".".join(str(part) for part in path) or "(top level)"


def parse_yaml(text, source, build=True):
    """The YAML document in ``text`` (safe types only), its alias expansion checked before it is built
    (``build=False``: only checked, nothing built, any tag allowed; None)."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node, source, _children_of_node)
        return loader.construct_document(node) if build else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or error
        raise ConfigError(f"{source}: not valid YAML{where}: {one_line(problem, 200)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def read_text(path, what="config file"):
    """The text of a file of at most :data:`MAX_BYTES` (a regular file: never a FIFO or device), UTF-8."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path}: not a regular file")
    if info.st_size > MAX_BYTES:
        raise ConfigError(f"{what} {path}: {info.st_size:,} bytes, more than a configuration may hold "
                          f"({MAX_BYTES:,})")
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_BYTES + 1).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {path}: not UTF-8 text (byte {error.start})") from None


def load_yaml(path, what="config file"):
    """A YAML file of at most :data:`MAX_BYTES` (a regular file: never a FIFO or device), parsed by
    :func:`parse_yaml`."""
    return parse_yaml(read_text(path, what), f"{what} {Path(path)}")


def check_config_file(path, what="config file"):
    """Raise :class:`ConfigError` if Snakemake's reading of the config file at ``path`` could blow up: more than
    :data:`MAX_BYTES`, or YAML aliases expanding past :data:`MAX_VALUES` values. Nothing is built: JSON (what
    Snakemake tries first; it has no aliases) or YAML composed to its shared nodes only, so any tag passes."""
    text = read_text(path, what)
    source = f"{what} {Path(path)}"
    try:
        json.loads(text)
        return
    except ValueError:
        pass
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    parse_yaml(text, source, build=False)


def check_config_value(entry):
    """Raise :class:`ConfigError` if a ``--config KEY=VALUE`` entry's value, which Snakemake parses as YAML (and
    else keeps as a string), holds YAML aliases expanding past :data:`MAX_VALUES` values."""
    import yaml

    key, _, text = entry.partition("=")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except (yaml.YAMLError, RecursionError):
        return  # not YAML: Snakemake keeps the string
    finally:
        loader.dispose()
    if node is not None:
        check_expansion(node, "--config", _children_of_node, prefix=(key.strip(),))


def check_sources(configfiles=(), config=None, entries=(), workflow_configfile=None):
    """Check every source of configuration a Snakemake run reads, before anything merges them (see the module's
    text): ``configfiles`` (``--configfile``, ``--configfiles``), ``config`` (``--config``, as Snakemake parsed it:
    a dict) or ``entries`` (``--config``, as ``KEY=VALUE`` words) and ``workflow_configfile`` (the Snakefile's
    ``configfile:``, checked when it exists)."""
    for path in configfiles:
        check_config_file(path)
    for key, value in (config or {}).items():
        check_expansion(value, "--config", prefix=(key,))
    for entry in entries:
        check_config_value(entry)
    if workflow_configfile is not None and os.path.exists(workflow_configfile):
        check_config_file(os.path.abspath(workflow_configfile))


def validate(config, schema, source="Error validating config file"):
    """Check ``config`` (as Snakemake loaded it) against a JSON schema (a dict, or the file it is in) and fill in the
    schema's defaults, as ``snakemake.utils.validate`` does; an error is one line naming the key, never the whole
    value (Snakemake's own message prints the instance: a whole configuration, or an alias bomb expanded)."""
    import jsonschema
    from jsonschema import validators

    check_expansion(config, source)
    if not isinstance(schema, dict):
        schema = load_yaml(schema, "schema")
    base = validators.validator_for(schema)
    check_properties = base.VALIDATORS["properties"]

    def with_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if isinstance(property_schema, dict) and "default" in property_schema:
                    instance.setdefault(name, property_schema["default"])
        yield from check_properties(validator, properties, instance, subschema)

    checker = validators.extend(base, {"properties": with_defaults})(schema)
    error = jsonschema.exceptions.best_match(checker.iter_errors(config))
    if error is not None:
        where = f"key {_dotted(error.absolute_path)!r}: " if error.absolute_path else ""
        text, shown = error.message, repr(error.instance)
        if len(shown) > 80:  # jsonschema's message quotes the value whole: say what it is instead
            size = f" of {len(error.instance)}" if isinstance(error.instance, (dict, list, str)) else ""
            text = text.replace(shown, f"its value (a {type(error.instance).__name__}{size})")
        raise ConfigError(f"{source}: {where}{one_line(text, 300)}")
    return config


WORKFLOW_CONFIGFILE = "config.yaml"  # the Snakefile's `configfile:`, read in Snakemake's --directory


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "check-config", help="check the configuration a Snakemake run would read before Snakemake reads it",
        description="Check the configuration Snakemake would read with these options (each --configfile file, each "
                    f"--config value, {WORKFLOW_CONFIGFILE} in --directory) for YAML alias bombs and size, before "
                    "Snakemake expands them: exit 2 and one line naming the file and key, or exit 0. Snakemake "
                    "merges its --configfile files itself, copying every mapping an alias repeats, before the "
                    "workflow can check them.")
    parser.add_argument("--configfile", "--configfiles", dest="configfiles", nargs="+", action="extend",
                        default=[], metavar="FILE", help="as Snakemake's (relative to the current directory)")
    parser.add_argument("--config", dest="entries", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="as Snakemake's")
    parser.add_argument("--directory", "-d", default=".", metavar="DIR",
                        help=f"Snakemake's working directory, where its {WORKFLOW_CONFIGFILE} is read (default: .)")
    parser.set_defaults(func=run)


def run(args):
    check_sources(args.configfiles, entries=args.entries,
                  workflow_configfile=os.path.join(args.directory, WORKFLOW_CONFIGFILE))
    return 0
