"""What the example scripts share: their --help layout and their one-line errors."""
import argparse
import os
import sys


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except None and False: their help says what happens without the flag."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def fail(message):
    """Stop with a one-line error on stderr (exit status 1), named after the running script."""
    raise SystemExit(f"{os.path.basename(sys.argv[0])}: error: {message}")
