"""CLI start-up: every verb is in ``--help`` whatever is installed, a verb loads only its own module,
and a missing optional dependency is one line naming the extra to install.

A missing dependency is simulated in a subprocess by blocking its import (``sys.modules[name] = None``,
or a finder that refuses it), as a machine without the extra would.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

from datumflow.storage_service.cli import main as cli

from .conftest import base_env

PROBE = """
import importlib.abc, json, sys
blocked = {blocked!r}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in blocked:  # as if this module imported a package that is not installed
            raise ModuleNotFoundError(f"No module named {{blocked[name]!r}}", name=blocked[name])
        return None
for name in {none!r}:
    sys.modules[name] = None
sys.meta_path.insert(0, Refuse())
from datumflow.storage_service.cli import main
sys.exit(main.main({argv!r}))
"""


def run(tmp_path: Path, argv: list[str], *, none: tuple[str, ...] = (), blocked: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    code = PROBE.format(blocked=blocked or {}, none=list(none), argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=base_env(), timeout=60)


def test_the_verb_table_is_what_the_modules_register() -> None:
    for module in cli.VERB_MODULES:
        commands = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"datumflow.storage_service.cli.{module}").register(commands)
        assert sorted(commands.choices) == sorted(v for v, m in cli.VERBS.items() if m == module), module


def test_help_lists_every_verb(tmp_path: Path) -> None:
    done = run(tmp_path, ["--help"])
    assert done.returncode == 0
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert set(cli.VERBS) <= listed, set(cli.VERBS) - listed


def test_a_verb_imports_only_its_own_module(tmp_path: Path) -> None:
    code = (
        "import sys, json\nfrom datumflow.storage_service.cli import main\n"
        "main.build_parser('ls')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('datumflow.storage_service.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base_env(), timeout=60)
    loaded = json.loads(done.stdout)
    assert "datumflow.storage_service.cli.files" in loaded
    for other in ("cli.pipelines", "cli.spout", "cli.service", "pipelines.engine", "service.app", "spouts.kafka"):
        assert f"datumflow.storage_service.{other}" not in loaded, other


def test_version_loads_no_verb_module(tmp_path: Path) -> None:
    code = (
        "import sys, json\nfrom datumflow.storage_service.cli import main\n"
        "main.main(['--version'])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('datumflow.storage_service.cli.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base_env(), timeout=60)
    out = done.stdout.splitlines()
    assert out[0].startswith("datumflow ")
    assert set(json.loads(out[1])) <= {"datumflow.storage_service.cli.main", "datumflow.storage_service.cli.base"}


def test_a_missing_dependency_at_run_time_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    done = run(tmp_path, ["spout", "run", "--bootstrap", "127.0.0.1:1", "--topic", "t", "--repo", "r"],
               none=("kafka",))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("datumflow: error: ") and "pip install 'datumflow[kafka]'" in done.stderr


def test_a_verb_module_that_cannot_import_is_still_listed_and_says_why(tmp_path: Path) -> None:
    blocked = {"datumflow.storage_service.spouts.kafka": "kafka"}
    helped = run(tmp_path, ["--help"], blocked=blocked)
    assert helped.returncode == 0
    assert "spout" in helped.stdout and "unavailable: needs kafka" in " ".join(helped.stdout.split())
    done = run(tmp_path, ["spout", "list"], blocked=blocked)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "datumflow: error: 'spout' needs the optional dependency kafka, which is not installed: "
        "pip install 'datumflow[kafka]'"
    )
    other = run(tmp_path, ["repo", "list", "--json"], blocked=blocked)  # the other verbs are untouched
    assert other.returncode == 0 and json.loads(other.stdout) == []
