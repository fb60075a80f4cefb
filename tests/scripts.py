"""The command-line scripts of examples/, imported as modules so that tests can call their ``main(argv)``."""
import importlib.util
import os
import sys

EXAMPLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples"))


def load_example(name):
    """``examples/<name>.py`` as a module (its ``if __name__ == "__main__"`` block does not run).

    examples/ goes on ``sys.path`` first, as when the script runs: the scripts import ``cli_common`` from it.
    """
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
