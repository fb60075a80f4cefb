"""What the example scripts share: their --help layout, their flag types and their one-line errors.

Each flag type refuses a bad value with a message that names what was
expected and what was given (argparse adds the flag), so that ``--limit 0``
fails before any data is read:

    train_vgg_a.py: error: argument --limit: expected an integer >= 1, got '0'

The ``check_*`` functions return a message, or None when all is well, for
checks that touch the file system.
"""
import argparse
import math
import os
import sys
import tempfile

from minivgg.backend import parse_device


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except None and False: their help says what happens without the flag."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def fail(message):
    """Stop with a one-line error on stderr (exit status 1), named after the running script."""
    raise SystemExit(f"{os.path.basename(sys.argv[0])}: error: {message}")


def integer(low, high=None):
    """An argparse type: an integer in [low, high] (no upper bound when ``high`` is None)."""
    bounds = f">= {low}" if high is None else f"in {low}..{high}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}")
        return value

    return parse


def number(low, high=math.inf, low_included=False):
    """An argparse type: a finite number above ``low`` (or equal to it, with ``low_included``) and below ``high``."""
    bounds = f"{'>=' if low_included else '>'} {low:g}" + ("" if high == math.inf else f" and < {high:g}")

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        above = value >= low if low_included else value > low
        if not (math.isfinite(value) and above and value < high):
            raise argparse.ArgumentTypeError(f"expected a finite number {bounds}, got {text!r}")
        return value

    return parse


def scale(text):
    """An argparse type: a training scale S, or S_min,S_max with S_min <= S_max (positive integers)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1 or values != sorted(values):
        raise argparse.ArgumentTypeError(f"expected a positive integer S or S_min,S_max with S_min <= S_max, "
                                         f"got {text!r}")
    return ",".join(map(str, values))


def device(text):
    """An argparse type: 'cpu', 'cuda' or 'cuda:<index>'."""
    try:
        parse_device(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'cpu', 'cuda' or 'cuda:<index>', got {text!r}") from None
    return text


def check_writable_directory(flag, path):
    """Create ``path`` if needed and write a probe file into it; a message naming ``flag`` if that fails."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{flag} {path} is a file, expected a directory for the run's outputs"
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        return f"{flag} {path}: cannot write there ({error.strerror or error})"
    return None


def check_writable_file(flag, path):
    """A message naming ``flag`` unless ``path`` can be written as a file (its folder exists and is writable)."""
    if os.path.isdir(path):
        return f"{flag} {path} is a directory, expected a file name"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"{flag} {path}: the folder {folder} does not exist"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"{flag} {path}: cannot write in {folder} ({error.strerror or error})"
    return None
