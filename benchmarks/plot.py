"""Line plots of benchmark figures as PNGs in docs/: ``plot(spec, out)`` from an area, drawn by matplotlib.

matplotlib lives in ``.venv-bench`` (requirements/bench.in), not in the
environment the benchmarks run in, so :func:`plot` hands the spec to
``python -m benchmarks.plot OUT`` in that environment (JSON on stdin). A spec
is ``{"title", "xlabel", "ylabel", "series": {label: [[x, y], ...]}}`` with
optional ``"xlog": true`` and ``"note"`` (a line under the title).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["plot"]

ROOT = Path(__file__).resolve().parent.parent


def plot(spec: dict[str, Any], out: Path) -> str | None:
    """Draw ``spec`` into ``out``; None when done, else why not (no matplotlib anywhere)."""
    python = _python()
    if python is None:
        return "matplotlib is not installed (make bench builds .venv-bench with it)"
    done = subprocess.run([python, "-m", "benchmarks.plot", str(out)], input=json.dumps(spec), text=True,
                          capture_output=True, cwd=str(ROOT), timeout=120)
    return None if done.returncode == 0 else f"plot failed: {done.stderr.strip()[-500:]}"


def _python() -> str | None:
    for candidate in (ROOT / ".venv-bench" / "bin" / "python", Path(sys.executable)):
        if candidate.exists() and _has_matplotlib(str(candidate)):
            return str(candidate)
    found = shutil.which("python3")
    return found if found and _has_matplotlib(found) else None


def _has_matplotlib(python: str) -> bool:
    return subprocess.run([python, "-c", "import matplotlib"], capture_output=True, timeout=60).returncode == 0


def _draw(spec: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for label, points in spec["series"].items():
        xs, ys = zip(*points, strict=True) if points else ((), ())
        ax.plot(xs, ys, marker="o", label=label)
    if spec.get("xlog"):
        ax.set_xscale("log", base=2)
        ticks = sorted({x for points in spec["series"].values() for x, _ in points})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel(spec["xlabel"])
    ax.set_ylabel(spec["ylabel"])
    ax.set_ylim(bottom=0)
    title = spec["title"] + (f"\n{spec['note']}" if spec.get("note") else "")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


if __name__ == "__main__":
    _draw(json.load(sys.stdin), Path(sys.argv[1]))
