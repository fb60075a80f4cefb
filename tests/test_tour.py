"""docs/tour.md cannot rot: its Python blocks run in order, in one namespace, and assert what the text says."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "docs" / "tour.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", TOUR.read_text(), flags=re.DOTALL)


def test_the_tour_runs():
    blocks = python_blocks()
    assert len(blocks) == 6
    namespace = {}
    for block in blocks:
        exec(compile(block, str(TOUR), "exec"), namespace)  # noqa: S102  (the project's own documentation)
    assert namespace["kernels"].active("cpu") is namespace["kernels"].NUMPY


def test_the_walk_names_at_most_five_files_and_they_exist():
    walk = TOUR.read_text().split("## 1.")[1].split("## 2.")[0]
    files = sorted(set(re.findall(r"\*\*`([^`]+)`\*\*", walk)))
    assert files == ["kernels/conv.cu", "kernels/conv.py", "kernels/sets.py", "minivgg/functions/conv.py"]
    assert all((ROOT / f).exists() for f in files)


def test_the_gdb_recipe_points_at_the_relu_loop():
    """The breakpoint line of section 3 is the body of relu_forward's grid-stride loop."""
    line = int(re.search(r"break activation\.cu:(\d+)", TOUR.read_text()).group(1))
    source = (ROOT / "kernels" / "activation.cu").read_text().splitlines()
    assert "y[e]" in source[line - 1] and "relu_forward" in "\n".join(source[:line])
