"""The ``sync`` verb: a local folder and a branch made equal, moving only the differences.

    datumflow sync LOCAL_DIR REPO@BRANCH[:PATH]   # up: one commit of what differs
    datumflow sync REPO@REF[:PATH] LOCAL_DIR      # down: only differing files are written

The remote side is the argument of the form ``REPO@REF`` that is not an
existing local path. ``--delete`` also removes what the source lacks;
``--dry-run`` prints the plan and changes nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TextIO

from datumflow.storage_service.cli.base import Commands, Context, add_json, file_arg, write_arg
from datumflow.storage_service.cli.output import byte_progress, emit
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.sync import SyncResult

__all__ = ["register"]


def register(commands: Commands) -> None:
    sync = add_json(commands.add_parser(
        "sync", help="make a folder and a branch equal, moving only what differs (either way)",
        description="LOCAL_DIR REPO@BRANCH[:PATH] writes one commit of the files added or changed in the "
                    "folder; REPO@REF[:PATH] LOCAL_DIR writes into the folder the files that differ. "
                    "Unchanged files are not read again (a stat cache; see docs/cli.md).",
    ))
    sync.add_argument("source", metavar="SRC")
    sync.add_argument("dest", metavar="DEST")
    sync.add_argument("--delete", action="store_true", help="also remove what the source does not have")
    sync.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    sync.add_argument("-m", "--message", metavar="MSG", default="", help="description of the commit (up)")
    sync.set_defaults(run=sync_folder)


def sync_folder(ctx: Context, args: argparse.Namespace) -> None:
    _warnings_to_stderr()
    up = _is_remote(args.dest)
    if up == _is_remote(args.source):
        raise InvalidArgument(
            f"sync needs one local folder and one REPO@REF[:PATH], got {args.source!r} and {args.dest!r}"
        )
    with byte_progress(ctx, "syncing", None) as tick:
        if up:
            repo, branch, path = write_arg(args.dest)
            result = ctx.store.sync_up(args.source, repo, branch, path, delete=args.delete, dry_run=args.dry_run,
                                       description=args.message, progress=tick)
        else:
            repo, ref, path = file_arg(args.source, need_path=False)
            result = ctx.store.sync_down(repo, ref, path, args.dest, delete=args.delete, dry_run=args.dry_run,
                                         progress=tick)
    emit(ctx, args, _json_of(result), lambda out, _: _render(out, result))


def _warnings_to_stderr() -> None:
    """A damaged stat cache (ignored, so nothing is lost) is said on one line, as the CLI's errors are."""
    top = logging.getLogger("datumflow")
    if any(getattr(h, "datumflow_cli", False) for h in top.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.datumflow_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("datumflow: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    top.addHandler(handler)
    top.propagate = False


def _is_remote(text: str) -> bool:
    head = text.split(":", 1)[0]
    return "@" in head and "/" not in head and not os.path.exists(text)


def _json_of(result: SyncResult) -> dict[str, object]:
    out = result.counts()
    if result.dry_run:
        out["plan"] = {"added": list(result.added), "changed": list(result.changed), "deleted": list(result.deleted)}
    return out


def _render(out: TextIO, result: SyncResult) -> None:
    if result.dry_run:
        for verb, paths in (("add", result.added), ("change", result.changed), ("delete", result.deleted)):
            for path in paths:
                out.write(f"{verb:<7}{path}\n")
    done = "would sync" if result.dry_run else "synced"
    where = f" in commit {result.commit}" if result.direction == "up" and result.commit else ""
    if result.direction == "down" and result.commit:
        where = f" from commit {result.commit}"
    out.write(f"{done}: {len(result.added)} added, {len(result.changed)} changed, {len(result.deleted)} deleted, "
              f"{result.unchanged} unchanged{where}\n")
