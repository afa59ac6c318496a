"""The demo runs, and shows that only the new datums ran."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_and_reuses_datums(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "datumflow.storage_service.cli.demo", "--root", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wordcount ran 3 new datums and reused 12" in proc.stdout
    assert "lineage of total@" in proc.stdout
    assert "docs@" in proc.stdout
