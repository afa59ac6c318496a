"""The ``datumflow`` command line: each verb maps its arguments to one store call.

    datumflow [--address URL] VERB ... [--json]

The store is ``datumflow.connect(address)``: the embedded store for
``file:///path`` (default ``file://./.datumflow``), the HTTP service for
``http://host:port`` — the same verbs work against both. ``--address``
defaults to ``$DATUMFLOW_ADDRESS``; the token comes from ``$DATUMFLOW_TOKEN``.

Exit status: 0 on success; 1 for an error of the store (any
:class:`~.errors.DatumflowError`) or of a local file, with one line
``datumflow: error: <message>`` on stderr; 2 for a usage error (same one
line); 130 when interrupted. ``main`` is the only place errors are caught;
anything unexpected is one line too, or a traceback with ``DATUMFLOW_DEBUG=1``.

Adding verbs
------------
A module ``storage_service/cli/<topic>.py`` defines ``register`` and is
named in :data:`VERB_MODULES`; nothing else here changes::

    from datumflow.storage_service.cli.base import Commands, Context, add_json, subcommands
    from datumflow.storage_service.cli.output import emit, print_table

    def register(commands: Commands) -> None:
        pipeline = commands.add_parser("pipeline", help="pipelines")
        verbs = subcommands(pipeline)
        create = add_json(verbs.add_parser("create", help="create a pipeline"))
        create.add_argument("-f", dest="spec", required=True)
        create.set_defaults(run=create_pipeline)

    def create_pipeline(ctx: Context, args: argparse.Namespace) -> int | None:
        emit(ctx, args, ctx.store.create_pipeline(...), render_pipeline)
        return None  # or an exit status

A listed module that is missing, or cannot import (an optional dependency
is not installed), is skipped: its verbs are absent and ``--help`` says why.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from datumflow.storage_service.cli.base import Context, env_address
from datumflow.storage_service.errors import DatumflowError

__all__ = ["VERB_MODULES", "build_parser", "main"]

VERB_MODULES = (
    "store",  # repo, branch, commit, commit-set, log, provenance, fsck, gc
    "files",  # put, get, ls, glob, diff, rm, cp
    "sync",  # sync
    "service",  # serve, auth
    "pipelines",  # pipeline, job, datum, lineage, worker
    "spout",  # spout
    "db",  # db upgrade|current
    "history",  # merge, revert, tag, bisect
)


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"datumflow: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> Parser:
    parser = Parser(prog="datumflow", description="Versioned data with provenance.")
    parser.add_argument("--address", help=f"http://host:port or file:///path (default: $DATUMFLOW_ADDRESS or "
                        f"{env_address()})")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    skipped = []
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ImportError as exc:
            skipped.append(f"{name} ({exc})")
            continue
        module.register(commands)
    if skipped:
        parser.epilog = "unavailable here: " + "; ".join(skipped)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = Context(args.address or env_address(), token=os.environ.get("DATUMFLOW_TOKEN") or None)
    try:
        return args.run(ctx, args) or 0
    except DatumflowError as exc:
        return _fail(ctx, str(exc))
    except OSError as exc:  # a local file: unreadable source, unwritable output…
        if isinstance(exc, BrokenPipeError):
            return _quiet_broken_pipe()
        return _fail(ctx, _describe_os_error(exc))
    except KeyboardInterrupt:
        return _fail(ctx, "interrupted", status=130)
    except Exception as exc:  # a bug or a broken backend: still one line, unless debugging
        if os.environ.get("DATUMFLOW_DEBUG"):
            raise
        return _fail(ctx, f"internal error ({type(exc).__name__}): {exc} (set DATUMFLOW_DEBUG=1 for a traceback)")
    finally:
        ctx.close()


def _fail(ctx: Context, message: str, status: int = 1) -> int:
    ctx.stdout.flush()
    one_line = " ".join(message.split()) or "failed"
    ctx.stderr.write(f"datumflow: error: {one_line}\n")
    return status


def _describe_os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


def _quiet_broken_pipe() -> int:
    # The reader went away (``datumflow get … | head``): stop without a traceback at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


def _version() -> str:
    from datumflow import __version__

    return f"datumflow {__version__}"


if __name__ == "__main__":
    sys.exit(main())
