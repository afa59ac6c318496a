"""Schema migrations: a new store is at the newest revision, a 0.1 store upgrades with its data
intact, a store of another revision is refused with a one-line message, replicas race safely."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from datumflow.storage_service import Store
from datumflow.storage_service.core import migrations
from datumflow.storage_service.core.db import connect_engine
from datumflow.storage_service.core.schema import metadata
from datumflow.storage_service.errors import SchemaMismatch
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from tests.helpers.threads import threads_running

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "store-0.1.tar.gz"
CLI = [sys.executable, "-m", "datumflow.storage_service.cli"]


def _all_tables() -> None:
    # Tables of the upper layers register themselves on the shared metadata when imported.
    import datumflow.storage_service.service.auth
    import datumflow.storage_service.service.s3.keys
    import datumflow.storage_service.service.s3.multipart
    import datumflow.storage_service.spouts.registry  # noqa: F401


def _migrated_schema_diff(url: str) -> list[Any]:
    _all_tables()
    engine = connect_engine(url)
    try:
        migrations.upgrade(engine)
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_the_tables_the_code_uses(tmp_path: Path) -> None:
    """Adding a column or table without a migration revision fails here."""
    assert _migrated_schema_diff(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.postgres
def test_the_migrations_build_exactly_the_tables_the_code_uses_on_postgresql(postgres_url: str) -> None:
    assert _migrated_schema_diff(postgres_url) == []


def test_the_known_head_is_the_newest_shipped_revision() -> None:
    assert migrations.head() == migrations.HEAD


def test_opening_a_store_at_the_newest_revision_does_not_load_alembic(tmp_path: Path) -> None:
    Store(str(tmp_path / "s"), fsync=False).close()
    probe = ("import sys; from datumflow.storage_service.store.store import Store; "
             f"Store({str(tmp_path / 's')!r}).close(); print('alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_a_new_store_is_at_the_newest_revision(tmp_path: Path) -> None:
    with Store(str(tmp_path / "s"), fsync=False) as store:
        assert migrations.current(store.engine) == migrations.head()


def _unpack_release_store(tmp_path: Path) -> Path:
    root = tmp_path / "old"
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(root, filter="data")
    return root


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_a_store_made_by_release_0_1_upgrades_with_its_data_intact(tmp_path: Path) -> None:
    root = _unpack_release_store(tmp_path)
    current = _cli("db", "current", "--root", str(root), "--json")
    assert current.returncode == 0, current.stderr
    assert '"current": "0001"' in current.stdout
    if migrations.head() != migrations.LEGACY_REVISION:
        with pytest.raises(SchemaMismatch, match="datumflow db upgrade"):
            Store(str(root))
    upgraded = _cli("db", "upgrade", "--root", str(root), "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f'"to": "{migrations.head()}"' in upgraded.stdout
    again = _cli("db", "upgrade", "--root", str(root))
    assert again.returncode == 0 and "already at" in again.stdout
    with Store(str(root)) as store:
        assert sorted(r.name for r in store.list_repos()) == ["sales", "totals"]
        assert store.get_file("sales", "master", "2026/jan.csv") == b"day,amount\n1,10\n2,20\n"
        assert store.get_file("sales", "master", "big.bin") == bytes(range(256)) * 64
        assert store.get_file("sales", "dev", "2026/apr.csv") == b"day,amount\n1,1\n"
        assert store.get_file("totals", "master", "jan.csv.lines").strip() == b"3"
        out = store.inspect_commit("totals", "master")
        assert {p.repo for p in store.provenance("totals", out.id)} >= {"sales"}
        report = store.fsck()
        assert not report.get("errors"), report


def test_a_store_of_a_newer_release_is_refused_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Store(str(root), fsync=False).close()
    engine = connect_engine(f"sqlite:///{root / 'metadata.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaMismatch, match="newer datumflow"):
        Store(str(root))
    served = _cli("serve", "--root", str(root), "--port", "0")
    assert served.returncode == 1
    lines = served.stderr.strip().splitlines()
    assert lines[-1].startswith("datumflow: error: ") and "9999" in lines[-1], served.stderr
    upgrade = _cli("db", "upgrade", "--root", str(root))
    assert upgrade.returncode == 1 and "newer datumflow" in upgrade.stderr


@pytest.mark.postgres
def test_replicas_starting_together_on_an_empty_postgresql_all_start(postgres_url: str, tmp_path: Path) -> None:
    barrier = threading.Barrier(8)

    def start(i: int) -> None:
        barrier.wait()
        Store(str(tmp_path / f"r{i}"), db_url=postgres_url, fsync=False).close()

    with threads_running(start, 8) as errors:
        pass
    assert errors == []
    engine = connect_engine(postgres_url)
    assert migrations.current(engine) == migrations.head()
    engine.dispose()


def _downgrade(engine: Any, target: str) -> None:
    """Take a database back to ``target`` with the shipped revisions' downgrades (as an older release left it)."""
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext

    scripts = migrations._scripts()
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as conn, EnvironmentContext(
        config, scripts, fn=lambda rev, _ctx: scripts._downgrade_revs(target, rev), destination_rev=target,
    ) as env:
        env.configure(connection=conn, target_metadata=metadata)
        env.run_migrations()


def test_a_0002_store_upgrades_and_its_jobs_become_bases(tmp_path: Path) -> None:
    """0004 adds df_jobs.base_job: jobs recorded before it are roots a later job inherits from."""
    from datumflow.storage_service.pipelines.engine import Pipelines

    root = tmp_path / "s"
    copy = ["sh", "-c", "cp /pfs/a/* /pfs/out/"]
    with Store(str(root), fsync=False) as store:
        store.create_repo("a")
        store.put_files("a", "master", [(f"f{i}", b"%d" % i) for i in range(4)])
        Pipelines(store).create_pipeline({"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "a", "glob": "/*"}},
                                          "transform": {"image": "alpine:3", "cmd": copy}})
        (first,) = Pipelines(store).process()
    engine = connect_engine(f"sqlite:///{root / 'metadata.db'}")
    try:
        _downgrade(engine, "0002")
        assert migrations.current(engine) == "0002"
        with engine.connect() as conn:
            assert "base_job" not in {c["name"] for c in sa_inspect(conn).get_columns("df_jobs")}
        with pytest.raises(SchemaMismatch, match="datumflow db upgrade"):
            Store(str(root))
        assert migrations.upgrade(engine) == ("0002", migrations.head())
    finally:
        engine.dispose()
    with Store(str(root), fsync=False) as store:
        pipes = Pipelines(store)
        assert pipes.inspect_job(first.id).base_job is None
        store.put_file("a", "master", "f1", b"changed")
        (second,) = pipes.process()
        assert second.base_job == first.id
        assert (second.total, second.processed, second.skipped) == (4, 1, 3)
        assert store.get_file("p", "master", "f1") == b"changed" and store.get_file("p", "master", "f2") == b"2"
        assert pipes.lineage("p", "master", "f2").inputs[0].path == "f2"
