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
A module ``storage_service/cli/<topic>.py`` defines ``register`` and its
verbs are named in :data:`VERBS` (verb -> module); nothing else here changes::

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

Start-up stays short: ``--version`` imports no verb module, and a verb
imports only the module that defines it (``datumflow ls`` never loads the
pipelines, the service or Kafka); only ``--help`` (or an unknown verb) loads
them all. A module that cannot import because an optional dependency is
missing still lists its verbs in ``--help``; running one answers with one
line naming the extra to install (``pip install 'datumflow[kafka]'``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from datumflow.storage_service.errors import DatumflowError

if TYPE_CHECKING:
    from datumflow.storage_service.cli.base import Context

__all__ = ["EXTRAS", "VERBS", "VERB_MODULES", "build_parser", "main"]

# Every verb and the module under cli/ that registers it (tests/cli checks the table against the modules).
VERBS: dict[str, str] = {
    **dict.fromkeys(("repo", "branch", "commit", "commit-set", "log", "provenance", "subvenance", "fsck", "gc"),
                    "store"),
    **dict.fromkeys(("put", "get", "ls", "glob", "diff", "rm", "cp"), "files"),
    "sync": "sync",
    **dict.fromkeys(("serve", "auth"), "service"),
    **dict.fromkeys(("pipeline", "job", "datum", "lineage", "logs", "worker"), "pipelines"),
    "spout": "spout",
    "db": "db",
    **dict.fromkeys(("merge", "revert", "tag", "bisect"), "history"),
}
VERB_MODULES = tuple(dict.fromkeys(VERBS.values()))

# The extra that installs a missing top-level module.
EXTRAS = {"kafka": "kafka", "boto3": "s3", "s3fs": "s3", "psycopg": "postgres", "psycopg2": "postgres",
          "kubernetes": "airflow", "airflow": "airflow", "kfp": "kfp"}


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"datumflow: error: {message} (see '{self.prog} --help')\n")


def build_parser(verb: str | None = None) -> Parser:
    """The parser; with ``verb``, only the module that registers it is imported."""
    from datumflow.storage_service.cli.base import env_address

    parser = Parser(prog="datumflow", description="Versioned data with provenance.")
    parser.add_argument("--address", help=f"http://host:port or file:///path (default: $DATUMFLOW_ADDRESS or "
                        f"{env_address()})")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    names = [VERBS[verb]] if verb in VERBS else list(VERB_MODULES)
    for name in names:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ImportError as exc:
            if exc.name is None or exc.name.startswith("datumflow"):
                raise  # a bug of ours, not a missing dependency
            _unavailable(commands, name, exc.name)
            continue
        module.register(commands)
    return parser


def _unavailable(commands: Any, module: str, missing: str) -> None:
    """Verbs whose module needs a dependency that is not installed: listed, and one line when run."""
    top = missing.split(".")[0]
    extra = EXTRAS.get(top)
    fix = f"pip install 'datumflow[{extra}]'" if extra else f"install the Python package {top!r}"
    for verb in (v for v, m in VERBS.items() if m == module):
        p = commands.add_parser(verb, help=f"(unavailable: needs {top}; {fix})", add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(run=_missing(verb, top, fix))


def _missing(verb: str, top: str, fix: str) -> Any:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        raise DatumflowError(f"'{verb}' needs the optional dependency {top}, which is not installed: {fix}")

    return run


def _verb_of(argv: Sequence[str]) -> str | None:
    """The verb in ``argv`` (after the global options), if it is a known one."""
    rest = list(argv)
    while rest:
        head = rest.pop(0)
        if head == "--address":
            rest = rest[1:]
        elif head.startswith("--address="):
            continue
        else:
            return head if head in VERBS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # no verb module, no store: the quickest answer there is
        sys.stdout.write(_version() + "\n")
        return 0
    # httpx loads its own command line (click, rich, pygments: a third of what importing the HTTP
    # client costs) unless that module is unavailable; this process is datumflow's command line.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from datumflow.storage_service.cli.base import Context, env_address

    args = build_parser(_verb_of(argv)).parse_args(argv)
    ctx = Context(args.address or env_address(), token=os.environ.get("DATUMFLOW_TOKEN") or None)
    try:
        return args.run(ctx, args) or 0
    except DatumflowError as exc:
        return _fail(ctx, str(exc))
    except ImportError as exc:
        if exc.name is None or exc.name.startswith("datumflow"):
            raise
        top = exc.name.split(".")[0]
        extra = EXTRAS.get(top)
        fix = f"pip install 'datumflow[{extra}]'" if extra else f"install the Python package {top!r}"
        return _fail(ctx, f"'{args.command}' needs the optional dependency {top}, which is not installed: {fix}")
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
