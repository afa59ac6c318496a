"""CLI start-up: every verb is in ``--help`` whatever is installed, a verb loads only its own module,
a verb loads none of the libraries it has no use for (what it imports is what its start costs), and a
missing optional dependency is one line naming the extra to install.

A missing dependency is simulated in a subprocess by blocking its import (``sys.modules[name] = None``,
or a finder that refuses it), as a machine without the extra would.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.cli import main as cli
from datumflow.storage_service.errors import DatumflowError

from .conftest import Cli, base_env

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


# -- what a start imports -------------------------------------------------------------------

IMPORTS = """
import json, sys
from datumflow.storage_service.cli import main
status = main.main({argv!r})
with open({out!r}, "w") as f:
    json.dump(sorted(name for name, module in sys.modules.items() if module is not None), f)
sys.exit(status)
"""

# Loaded by no verb below: the service, the pipelines and the spouts, their web and broker libraries,
# the adapters' frameworks, schema migrations (a store at the current revision is checked with one
# SELECT), SQLAlchemy's ORM and the PostgreSQL dialect, fsspec (a local object folder), re2 (globs),
# and the terminal libraries httpx would load for a command line of its own.
NEVER = (
    "datumflow.storage_service.service", "datumflow.storage_service.pipelines", "datumflow.storage_service.spouts",
    "fastapi", "starlette", "uvicorn", "kafka", "airflow", "kfp", "kubernetes", "alembic", "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql", "psycopg", "fsspec", "s3fs", "boto3", "re2", "pydantic", "yaml", "rich",
    "click", "pygments",
)
STORE = ("sqlalchemy", "datumflow.storage_service.store", "datumflow.storage_service.core")


def imports_of(cwd: Path, argv: list[str], env: dict[str, str] | None = None,
               ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out = cwd / "modules.json"
    code = IMPORTS.format(argv=argv, out=str(out))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env={**base_env(), **(env or {})}, timeout=60)
    return done, set(json.loads(out.read_text()))


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_version_imports_the_package_alone(tmp_path: Path) -> None:
    done, modules = imports_of(tmp_path, ["--version"])
    assert (done.returncode, done.stdout) == (0, "datumflow 0.1.0\n")
    ours = loaded(modules, ("datumflow",))
    assert set(ours) <= {"datumflow", "datumflow.storage_service", "datumflow.storage_service.errors",
                         "datumflow.storage_service.cli", "datumflow.storage_service.cli.main"}, ours
    assert loaded(modules, (*NEVER, *STORE, "httpx", "dataclasses")) == []


def test_ls_on_the_embedded_store_reads_it_without_sqlalchemy(cli: Cli) -> None:
    cli.ok("repo", "create", "r")
    cli.ok("put", "r@master:a.txt", "-", input=b"a\n")
    cli.ok("put", "r@master:d/b.txt", "-", input=b"bb\n")
    for argv in (["ls", "r@master"], ["ls", "r@master:d"], ["ls", "--json", "r@master"]):
        done, modules = imports_of(cli.cwd, argv)
        assert (done.returncode, done.stderr) == (0, ""), argv
        assert done.stdout == cli.ok(*argv), argv  # what the store itself prints
        assert loaded(modules, ("sqlalchemy", "datumflow.storage_service.store.store")) == [], argv
        assert "datumflow.storage_service.store.local_read" in modules
        assert loaded(modules, (*NEVER, "httpx", "datumflow.storage_service.client")) == [], argv


def test_ls_the_reader_cannot_answer_opens_the_store(cli: Cli) -> None:
    cli.ok("repo", "create", "r")
    cli.ok("put", "r@master:a.txt", "-", input=b"a\n")
    cli.ok("put", "r@master:b.txt", "-", input=b"b\n")
    cli.ok("tag", "create", "r@v1", "--commit", "master")
    cli.ok("branch", "create", "r@empty")
    for argv, want in ((["ls", "r@v1"], "b.txt"), (["ls", "r@master~1"], "a.txt")):
        done, modules = imports_of(cli.cwd, argv)
        assert (done.returncode, done.stderr) == (0, ""), argv
        assert want in done.stdout and done.stdout == cli.ok(*argv), argv
        assert loaded(modules, ("sqlalchemy", "datumflow.storage_service.store.store")), argv  # the store answered
        assert loaded(modules, (*NEVER, "httpx", "datumflow.storage_service.client")) == [], argv
    for argv in (["ls", "nope@master"], ["ls", "r@nope"], ["ls", "r@empty"], ["ls", "r@master:nope"]):
        done, _modules = imports_of(cli.cwd, argv)
        assert (done.returncode, done.stderr) == (1, f"datumflow: error: {cli.fail(*argv)}\n"), argv


def test_get_from_the_embedded_store_reads_it_without_sqlalchemy(cli: Cli) -> None:
    big = random.Random(3).randbytes(6 * 1024 * 1024)  # several chunks, read ahead on the pool
    (cli.cwd / "big.bin").write_bytes(big)
    cli.ok("repo", "create", "r")
    cli.ok("put", "r@master:a.txt", "-", input=b"a\n")
    cli.ok("put", "r@master:d/big.bin", "big.bin")
    head = cli.ok("log", "r@master", "--json")
    commit = json.loads(head)[0]["id"]
    for argv, want in ((["get", "r@master:a.txt"], "a\n"), (["get", f"r@{commit}:/a.txt"], "a\n"),
                       (["get", "r@master:d/big.bin", "-o", "out/big.bin"], "")):
        done, modules = imports_of(cli.cwd, argv)
        assert (done.returncode, done.stdout, done.stderr) == (0, want, ""), argv
        assert loaded(modules, ("sqlalchemy", "datumflow.storage_service.store.store")) == [], argv
        assert "datumflow.storage_service.core.reads" in modules
        assert loaded(modules, (*NEVER, "httpx", "datumflow.storage_service.client")) == [], argv
    assert (cli.cwd / "out" / "big.bin").read_bytes() == big
    assert [p.name for p in (cli.cwd / "out").iterdir()] == ["big.bin"]  # no part file left behind


def test_get_the_reader_cannot_answer_opens_the_store(cli: Cli) -> None:
    cli.ok("repo", "create", "r")
    cli.ok("put", "r@master:a.txt", "-", input=b"a\n")
    cli.ok("put", "r@master:a.txt", "-", input=b"a, again\n")
    cli.ok("put", "r@master:d/b.txt", "-", input=b"b\n")
    cli.ok("tag", "create", "r@v1", "--commit", "master~1")
    cli.ok("branch", "create", "r@empty")
    for argv, want in ((["get", "r@v1:a.txt"], "a, again\n"), (["get", "r@master~2:a.txt"], "a\n")):
        done, modules = imports_of(cli.cwd, argv)
        assert (done.returncode, done.stdout, done.stderr) == (0, want, ""), argv
        assert loaded(modules, ("sqlalchemy", "datumflow.storage_service.store.store")), argv  # the store answered
    with Store(str(cli.root)) as store:  # the errors, as the store's own read raises them
        for repo, ref, path in (("nope", "master", "a.txt"), ("r", "nope", "a.txt"), ("r", "empty", "a.txt"),
                                ("r", "master", "nope"), ("r", "master", "d"), ("r", "master", "d/")):
            with pytest.raises(DatumflowError) as raised:
                b"".join(store.open_file(repo, ref, path))
            for argv in (["get", f"{repo}@{ref}:{path}"], ["get", f"{repo}@{ref}:{path}", "-o", "x"]):
                done, _modules = imports_of(cli.cwd, argv)
                assert (done.returncode, done.stderr) == (1, f"datumflow: error: {raised.value}\n"), argv
                assert not (cli.cwd / "x").exists()


def test_verbs_against_a_service_import_no_store(cli: Cli, http_service: tuple[str, str]) -> None:
    url, token = http_service
    env = {"DATUMFLOW_ADDRESS": url, "DATUMFLOW_TOKEN": token}
    (cli.cwd / "one.txt").write_bytes(b"one\n")
    printed = {}
    for argv in (["repo", "create", "r"], ["put", "r@master:one.txt", "one.txt"], ["ls", "r@master"],
                 ["log", "r@master"], ["pipeline", "list", "--json"], ["job", "list", "--json"]):
        done, modules = imports_of(cli.cwd, argv, env)
        assert (done.returncode, done.stderr) == (0, ""), argv
        printed[argv[0]] = done.stdout
        assert loaded(modules, ("datumflow.storage_service.client.http",)), argv  # it did talk to the service
        assert loaded(modules, (*NEVER, *STORE)) == [], argv
        assert "asyncio" not in modules, argv  # the async client's, loaded by its first wait
    commit = printed["put"].strip()
    assert "one.txt" in printed["ls"] and commit in printed["log"]
    assert json.loads(printed["pipeline"]) == [] and json.loads(printed["job"]) == []
    assert not cli.root.exists()  # nothing went to a local store


def test_a_plain_http_client_loads_no_trust_store_and_https_keeps_the_default() -> None:
    from datumflow.storage_service.client.http import _tls

    plain = _tls("http://127.0.0.1:1")
    assert isinstance(plain, ssl.SSLContext)
    assert plain.cert_store_stats()["x509_ca"] == 0  # nothing loaded: the cost this avoids
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname  # and nothing it would accept
    assert _tls("https://datumflow.example") is True
    assert _tls("HTTPS://datumflow.example") is True


def test_the_model_package_loads_each_noun_on_first_use() -> None:
    code = (
        "import json, sys\nfrom datumflow.storage_service import model\n"
        "before = sorted(m for m in sys.modules if m.startswith('datumflow.storage_service.model.'))\n"
        "from datumflow.storage_service.model import FileInfo\n"
        "after = sorted(m for m in sys.modules if m.startswith('datumflow.storage_service.model.'))\n"
        "import importlib\n"
        "same = [n for n in model.__all__ if getattr(model, n) is not getattr(importlib.import_module("
        "'datumflow.storage_service.model.' + model._HOME[n]), n)]\n"
        "print(json.dumps([before, after, same, sorted(model._HOME) == sorted(model.__all__)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base_env(), timeout=60)
    before, after, wrong, complete = json.loads(done.stdout)
    assert before == []
    assert after == ["datumflow.storage_service.model.file", "datumflow.storage_service.model.value"]
    assert wrong == [] and complete
    with pytest.raises(ImportError, match="NoSuchValue"):
        from datumflow.storage_service.model import NoSuchValue  # type: ignore[attr-defined]  # noqa: F401


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
