"""``datumflow spout run|list|stop``: thin verbs over :mod:`.spout_kafka` and :mod:`.spout_registry`.

Also runnable alone: ``python -m datumflow.storage_service.cli.spout run|list|stop …``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from datumflow.storage_service.cli.base import DEFAULT_ADDRESS, Commands, Context, add_json, subcommands
from datumflow.storage_service.errors import DatumflowError, InvalidArgument
from datumflow.storage_service.model.core import Commit
from datumflow.storage_service.spouts import registry as spout_registry
from datumflow.storage_service.spouts.config import RESETS, SpoutConfig
from datumflow.storage_service.spouts.kafka import KafkaSpout
from datumflow.storage_service.spouts.layout import Format, Layout
from sqlalchemy import Engine

__all__ = ["add_verbs", "main", "register"]

_BEAT_SECONDS = 1.0


def register(commands: Commands) -> None:
    """Add the ``spout`` verb and its ``run``, ``list`` and ``stop`` sub-verbs."""
    spout = commands.add_parser("spout", help="ingest a Kafka topic into a repo, one commit per batch")
    add_verbs(subcommands(spout))


def add_verbs(verbs: Commands) -> None:
    _add_run(verbs.add_parser("run", help="consume a topic into REPO@BRANCH (resumes where it left off)"))
    listing = add_json(verbs.add_parser("list", help="spouts started with --name, and their status"))
    listing.set_defaults(run=list_command)
    stop = add_json(verbs.add_parser("stop", help="ask a named spout to stop after its current batch"))
    stop.add_argument("name")
    stop.set_defaults(run=stop_command)


def _add_run(run: argparse.ArgumentParser) -> None:
    add_json(run)
    run.add_argument("--bootstrap", required=True, help="HOST:PORT[,HOST:PORT...] of the Kafka brokers")
    run.add_argument("--topic", required=True)
    run.add_argument("--repo", required=True, help="created if missing")
    run.add_argument("--branch", default="master")
    run.add_argument("--name", help="register as a long-running spout (see `spout list|stop`)")
    run.add_argument("--batch-messages", type=int, default=SpoutConfig.batch_messages)
    run.add_argument("--batch-bytes", type=int, default=SpoutConfig.batch_bytes)
    run.add_argument("--batch-seconds", type=float, default=SpoutConfig.batch_seconds)
    run.add_argument("--stop-after-idle", type=float, metavar="S", help="stop after S seconds without messages")
    run.add_argument("--max-messages", type=int, metavar="N", help="stop after N messages")
    run.add_argument("--format", choices=[f.value for f in Format], default=Format.JSONL.value)
    run.add_argument("--layout", choices=[x.value for x in Layout], default=Layout.PARTITION.value)
    run.add_argument("--reset-offsets", choices=RESETS, help="ignore the offsets stored in the branch")
    run.add_argument("--commit-group", metavar="GROUP", help="also commit offsets to this group (best effort)")
    run.add_argument("--connect-timeout", type=float, default=SpoutConfig.connect_timeout, metavar="S")
    run.set_defaults(run=run_command)


def config_of(args: argparse.Namespace) -> SpoutConfig:
    return SpoutConfig(
        bootstrap=args.bootstrap, topic=args.topic, repo=args.repo, branch=args.branch,
        batch_messages=args.batch_messages, batch_bytes=args.batch_bytes, batch_seconds=args.batch_seconds,
        format=Format(args.format), layout=Layout(args.layout), reset_offsets=args.reset_offsets,
        commit_group=args.commit_group, connect_timeout=args.connect_timeout,
    )


# -- handlers ------------------------------------------------------------------------


def run_command(ctx: Context, args: argparse.Namespace) -> int:
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # its retries are noise; our errors say what failed
    config = config_of(args)
    stop = _stop_on_signals()
    hooks = _RegistryHooks(_registry(ctx), args.name, config, stop) if args.name else None
    spout = KafkaSpout(
        ctx.store, config,
        should_stop=hooks.should_stop if hooks else stop.is_set,
        on_commit=hooks.committed if hooks else _no_commit_hook,
        on_tick=hooks.tick if hooks else None,
    )
    error: str | None = None
    try:
        commits = spout.run(stop_after_idle=args.stop_after_idle, max_messages=args.max_messages)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if hooks:
            hooks.release(error)
    _print_run(ctx, args.json, commits, spout.offsets)
    return 0


def list_command(ctx: Context, args: argparse.Namespace) -> int:
    found = _registry(ctx).list_spouts()
    if args.json:
        print(json.dumps([s.to_dict() for s in found]), file=ctx.stdout)
        return 0
    for s in found:
        cfg = s.config
        print(
            f"{s.name}\t{s.state}\t{cfg.topic} -> {cfg.repo}@{cfg.branch}\t"
            f"{s.messages} messages in {s.commits} commits\tlast {s.last_commit or '-'}",
            file=ctx.stdout,
        )
    return 0


def stop_command(ctx: Context, args: argparse.Namespace) -> int:
    status = _registry(ctx).request_stop(args.name)
    if args.json:
        print(json.dumps(status.to_dict()), file=ctx.stdout)
    else:
        print(f"asked spout {status.name} to stop ({status.state})", file=ctx.stdout)
    return 0


# -- helpers ---------------------------------------------------------------------------


class _RegistryHooks:
    """Heartbeats, the stop flag and the final status of a named spout."""

    def __init__(self, registry: Any, name: str, config: SpoutConfig, stop: threading.Event) -> None:
        self.registry, self.name, self.stop = registry, name, stop
        self._last_beat = 0.0
        registry.claim(name, config)

    def should_stop(self) -> bool:
        return self.stop.is_set() or bool(self.registry.stop_requested(self.name))

    def tick(self) -> None:
        if time.monotonic() - self._last_beat >= _BEAT_SECONDS:
            self.registry.heartbeat(self.name)
            self._last_beat = time.monotonic()

    def committed(self, commit: Commit) -> None:
        self.registry.heartbeat(self.name, commit=commit.id, messages=commit.metadata["kafka"]["messages"])

    def release(self, error: str | None) -> None:
        self.registry.release(self.name, error=error)


def _no_commit_hook(_commit: Commit) -> None:
    pass


class _EngineRegistry:
    """:mod:`.spout_registry` on an embedded store's database, with the methods of ``Client.spouts``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_spouts(self) -> list[spout_registry.SpoutStatus]:
        return spout_registry.list_spouts(self.engine)

    def request_stop(self, name: str) -> spout_registry.SpoutStatus:
        return spout_registry.request_stop(self.engine, name)

    def claim(self, name: str, config: SpoutConfig) -> spout_registry.SpoutStatus:
        return spout_registry.claim(self.engine, name, config)

    def heartbeat(self, name: str, *, commit: str | None = None, messages: int = 0) -> None:
        spout_registry.heartbeat(self.engine, name, commit=commit, messages=messages)

    def stop_requested(self, name: str) -> bool:
        return spout_registry.stop_requested(self.engine, name)

    def release(self, name: str, *, error: str | None = None) -> None:
        spout_registry.release(self.engine, name, error=error)


def _registry(ctx: Context) -> Any:
    """The spout registry: the embedded store's database, or the service's spout routes."""
    engine = getattr(ctx.store, "engine", None)
    if isinstance(engine, Engine):
        return _EngineRegistry(engine)
    remote = getattr(ctx.store, "spouts", None)
    if remote is None:
        raise InvalidArgument(f"the store at {ctx.address} has no spout registry")
    return remote


def _stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT ask for a clean stop: the open batch is committed first."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def _print_run(ctx: Context, as_json: bool, commits: list[Commit], offsets: dict[int, int]) -> None:
    messages = sum(c.metadata["kafka"]["messages"] for c in commits)
    if as_json:
        doc: dict[str, Any] = {
            "commits": [c.to_dict() for c in commits],
            "messages": messages,
            "offsets": {str(p): o for p, o in sorted(offsets.items())},
        }
        print(json.dumps(doc), file=ctx.stdout)
        return
    for c in commits:
        print(f"{c}\t{c.metadata['kafka']['messages']} messages", file=ctx.stdout)
    print(f"{len(commits)} commits, {messages} messages; next offsets {offsets}", file=ctx.stdout)


# -- standalone entry point -------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datumflow")
    parser.add_argument("--address", default=os.environ.get("DATUMFLOW_ADDRESS") or DEFAULT_ADDRESS)
    add_verbs(subcommands(parser))  # `cli_spout run …` as well as `datumflow spout run …`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx = Context(args.address, os.environ.get("DATUMFLOW_TOKEN"))
    handler: Callable[[Context, argparse.Namespace], int | None] = args.run
    try:
        return handler(ctx, args) or 0
    except DatumflowError as exc:
        print(f"datumflow: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
