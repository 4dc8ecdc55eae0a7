"""Command-line values checked where they are parsed, so a bad one is one line naming the option, before any work.

Every verb's parser is a :class:`Parser` (errors are one line, without the usage block ``--help`` shows), and its
options take these types: counts and numbers with their ranges (finite, ``--workers 0`` or ``--short-side -5``
refused), frame sizes within :data:`MAX_SIDE`, and paths by role — an input must exist and be a regular file or a
folder (a FIFO or device would block a reader or feed it without end), an output may exist only as what it will be
(a folder for an output folder, a file for an output file).
"""
import argparse
import math
import os
import stat

from prep.base.errors import UserError, one_line

# the largest frame side we resize to or accept: 8K video is 7680 wide; 99999x99999 would be a 30 GB frame
MAX_SIDE = 8192


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, as every other error (``error: argument --size: … (see python
    -m prep frames --help)``), exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {one_line(message)} (see {self.prog} --help)\n")


def _fail(text):
    raise argparse.ArgumentTypeError(one_line(text, 300))


def count(minimum=1, maximum=None):
    """An integer in [minimum, maximum] (a worker, shard, epoch or frame count, a side length …)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            _fail(f"expected an integer, got {text!r}")
        if maximum is None and value < minimum:
            _fail(f"{value} is below {minimum}")
        if maximum is not None and not minimum <= value <= maximum:
            _fail(f"{value} is outside {minimum}..{maximum}")
        return value

    parse.__name__ = "integer"
    return parse


def number(minimum=None, maximum=None, above=None):
    """A finite float in [minimum, maximum], or above ``above`` (exclusive)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            _fail(f"expected a number, got {text!r}")
        if not math.isfinite(value):
            _fail(f"{text!r} is not a finite number")
        if above is not None and value <= above:
            _fail(f"{value:g} must be above {above:g}")
        if minimum is not None and value < minimum:
            _fail(f"{value:g} is below {minimum:g}")
        if maximum is not None and value > maximum:
            _fail(f"{value:g} is above {maximum:g}")
        return value

    parse.__name__ = "number"
    return parse


side = count(1, MAX_SIDE)


def checked(parse):
    """An option type from a parser that raises UserError (its message becomes the option's one-line error)."""
    def option(text):
        try:
            return parse(text)
        except UserError as error:
            _fail(str(error))
    option.__name__ = parse.__name__
    return option


def frame_size(text):
    """``WIDTHxHEIGHT``, each side 1..MAX_SIDE."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        _fail(f"expected WIDTHxHEIGHT, e.g. 340x256, got {text!r}")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        _fail(f"{width}x{height}: each side must be 1..{MAX_SIDE}")
    return width, height


def _kind(path, follow=True):
    """'file' | 'dir' | a phrase for anything else that is there ('a FIFO', 'a device') | None when nothing is."""
    try:
        mode = (os.stat if follow else os.lstat)(path).st_mode
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return "under a file, not a folder"
    except OSError as error:
        _fail(f"{path}: {error.strerror}")
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket or other special file"


_WHAT = {"file": "a file", "dir": "a folder"}


def _path(text, allowed, must_exist, role):
    if not text:
        _fail("an empty path")
    if "\0" in text:
        _fail("a path with a NUL byte")
    kind = _kind(text)
    if kind is None:
        if must_exist:
            _fail(f"{text}: no such {' or '.join(_WHAT[k].split()[1] for k in allowed)}")
        return text
    if kind not in allowed:
        _fail(f"{text}: is {_WHAT.get(kind, kind)}; {role} must be {' or '.join(_WHAT[k] for k in allowed)}")
    return text


def input_file(text):
    """An existing regular file (never a FIFO, device or folder)."""
    return _path(text, ("file",), True, "an input file")


def input_dir(text):
    return _path(text, ("dir",), True, "an input folder")


def input_path(text):
    """An existing regular file or folder."""
    return _path(text, ("file", "dir"), True, "an input")


def file_if_present(text):
    """A regular file when it is there; its absence is left to the command, which knows what makes it."""
    return _path(text, ("file",), False, "an input file")


def dir_if_present(text):
    return _path(text, ("dir",), False, "an input folder")


def output_dir(text):
    """A folder to write into: absent (it is made) or a folder."""
    return _path(text, ("dir",), False, "an output folder")


def output_file(text):
    """A file to write: absent or a regular file (replaced)."""
    return _path(text, ("file",), False, "an output file")
