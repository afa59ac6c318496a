"""Plots of benchmark figures (PNG files in docs/), drawn with matplotlib.

matplotlib is in the bench lock (requirements/bench.in, ``.venv-bench``),
not in the project's environment: when this process cannot import it, the
plot is drawn by ``.venv-bench``'s Python from the same data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["plot_lines"]

ROOT = Path(__file__).resolve().parent.parent
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"

_DRAW = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
spec = json.load(sys.stdin)
fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
for label, points in spec["series"].items():
    xs, ys = zip(*points) if points else ((), ())
    ax.plot(xs, ys, marker="o", label=label)
ax.set_title(spec["title"])
ax.set_xlabel(spec["xlabel"])
ax.set_ylabel(spec["ylabel"])
if spec.get("xlog"):
    ax.set_xscale("log", base=2)
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(spec["path"])
"""


def plot_lines(
    path: Path, *, title: str, xlabel: str, ylabel: str, series: dict[str, list[tuple[float, float]]],
    xlog: bool = False,
) -> None:
    """Draw ``series`` ({label: [(x, y), ...]}) as lines into the PNG ``path``."""
    spec = {"path": str(path), "title": title, "xlabel": xlabel, "ylabel": ylabel, "series": series, "xlog": xlog}
    try:
        import matplotlib  # noqa: F401
        python = sys.executable
    except ImportError:
        if not BENCH_PYTHON.exists():
            raise RuntimeError("matplotlib is not installed: run `make bench` (it builds .venv-bench)") from None
        python = str(BENCH_PYTHON)
    subprocess.run([python, "-c", _DRAW], input=json.dumps(spec), text=True, check=True, timeout=300)
