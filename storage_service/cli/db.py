"""``datumflow db upgrade|current``: the metadata database's schema revision, and migrating it.

Both work on the database directly (embedded root or ``--db URL``), never over HTTP:
a service refuses to start on a schema that is not its own, so the upgrade
runs before it, with every replica stopped and a backup taken.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, TextIO

from datumflow.storage_service.cli.base import Commands, Context, add_json, subcommands
from datumflow.storage_service.cli.output import emit

__all__ = ["register"]


def register(commands: Commands) -> None:
    db = commands.add_parser("db", help="the metadata database's schema: current revision, upgrade")
    verbs = subcommands(db)
    for name, run, text in (("current", _current, "print the schema revision the database is at"),
                            ("upgrade", _upgrade, "migrate the database to this release's schema")):
        parser = add_json(verbs.add_parser(name, help=text))
        parser.add_argument("--root", default=os.environ.get("DATUMFLOW_ROOT"),
                            help="store folder (default: the file:// --address, else ./.datumflow)")
        parser.add_argument("--db", default=os.environ.get("DATUMFLOW_DB"),
                            help="metadata database URL (default: SQLite inside the root)")
        parser.set_defaults(run=run)


def _url(ctx: Context, args: argparse.Namespace) -> str:
    if args.db:
        return str(args.db)
    root = args.root or ctx.address
    if root.startswith(("http://", "https://")):
        from datumflow.storage_service.errors import InvalidArgument

        raise InvalidArgument("db works on the database itself: give --root DIR or --db URL, not a service address")
    root = root[len("file://"):] if root.startswith("file://") else root
    return "sqlite:///" + os.path.join(os.path.abspath(root), "metadata.db")


def _current(ctx: Context, args: argparse.Namespace) -> None:
    from datumflow.storage_service.core import migrations
    from datumflow.storage_service.core.db import connect_engine

    engine = connect_engine(_url(ctx, args))
    try:
        revision = migrations.current(engine)
    finally:
        engine.dispose()
    value = {"current": revision, "head": migrations.head(), "up_to_date": revision == migrations.head()}
    emit(ctx, args, value, _render_current)


def _upgrade(ctx: Context, args: argparse.Namespace) -> None:
    from datumflow.storage_service.core import migrations
    from datumflow.storage_service.core.db import connect_engine

    engine = connect_engine(_url(ctx, args))
    try:
        before, after = migrations.upgrade(engine)
    finally:
        engine.dispose()
    value = {"from": before, "to": after, "changed": before != after}
    emit(ctx, args, value, _render_upgrade)


def _render_current(out: TextIO, v: dict[str, Any]) -> None:
    needs = " (head)" if v["up_to_date"] else f" (this release needs {v['head']}: run 'datumflow db upgrade')"
    out.write(f"{v['current'] or '(empty)'}{needs}\n")


def _render_upgrade(out: TextIO, v: dict[str, Any]) -> None:
    out.write(f"upgraded {v['from'] or '(empty)'} -> {v['to']}\n" if v["changed"] else f"already at {v['to']}\n")
