"""Verbs of files: put, get, ls, glob, diff, rm, cp.

``put`` writes every source in one commit (or into the branch's open commit);
``get`` streams a file to stdout or ``-o``, or a folder tree with ``-r``.
Files written locally land under a temporary name first, so a failed read
(say, a corrupt chunk) never leaves a half-written file behind.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from datumflow.storage_service.cli.base import Commands, Context, add_json, commit_arg, file_arg, write_arg
from datumflow.storage_service.cli.embedded import drive
from datumflow.storage_service.cli.output import byte_progress, emit, human_size, print_table
from datumflow.storage_service.cli.store import commit_id_line
from datumflow.storage_service.errors import InvalidArgument, PathNotFound
from datumflow.storage_service.model.core import DiffEntry, FileInfo

__all__ = ["FORCE_HELP", "register"]

FORCE_HELP = "repair a pipeline's output branch by hand (refused otherwise; for the repo's owners)"


def register(commands: Commands) -> None:
    _register_put(commands)
    _register_get(commands)
    _register_listing(commands)
    _register_changes(commands)


# -- put -------------------------------------------------------------------------------


def _register_put(commands: Commands) -> None:
    put = add_json(commands.add_parser(
        "put", help="write local files (or stdin) into one commit",
        description="SRC '-' reads stdin. A single file goes to DEST itself (unless DEST ends in '/'); "
                    "several files go into the folder DEST; a folder's contents (-r) go under DEST.",
    ))
    put.add_argument("target", metavar="REPO@BRANCH[:DEST]")
    put.add_argument("sources", metavar="SRC", nargs="+")
    put.add_argument("-r", "--recursive", action="store_true", help="write folders and everything under them")
    put.add_argument("-m", "--message", metavar="MSG", default="", help="description of the commit")
    put.add_argument("--append", action="store_true", help="append to existing files instead of replacing them")
    put.add_argument("--force", action="store_true", help=FORCE_HELP)
    put.add_argument("--no-run", action="store_true",
                     help="embedded store: leave the jobs this commit opens downstream for later (DATUMFLOW_NO_RUN=1)")
    put.set_defaults(run=put_files)


def put_files(ctx: Context, args: argparse.Namespace) -> None:
    repo, target, dest = write_arg(args.target)
    items = put_items(ctx, dest, args.sources, recursive=args.recursive)
    total = _local_size(items) if ctx.stderr_is_tty() else 0
    with byte_progress(ctx, "uploading", total) as tick:
        extra = {"progress": tick} if tick else {}
        commit = ctx.store.put_files(repo, target, items, append=args.append, description=args.message,
                                     force=args.force, **extra)
    drive(ctx.store, no_run=args.no_run)
    emit(ctx, args, commit, commit_id_line)


def put_items(ctx: Context, dest: str, sources: list[str], *, recursive: bool) -> list[tuple[str, Any]]:
    """(destination path, source) pairs; every local source is checked before anything is written."""
    if sources.count("-") > 1:
        raise InvalidArgument("stdin ('-') can be read only once")
    into_folder = len(sources) > 1 or dest.endswith("/") or not dest
    items: list[tuple[str, Any]] = []
    for src in sources:
        if src == "-":
            if into_folder:
                raise InvalidArgument("reading stdin ('-') needs a file destination: REPO@BRANCH:PATH")
            items.append((dest, ctx.stdin))
        elif os.path.isdir(src):
            if not recursive:
                raise InvalidArgument(f"{src} is a folder; use -r to write it")
            items.append((dest, Path(src)))
        elif os.path.isfile(src):
            items.append((_join(dest, os.path.basename(src)) if into_folder else dest, Path(src)))
        else:
            raise PathNotFound(f"local path {src} does not exist")
    return items


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder.strip("/") else name


def _local_size(items: list[tuple[str, Any]]) -> int | None:
    total = 0
    for _, src in items:
        if not isinstance(src, Path):
            return None  # stdin: size unknown
        if src.is_dir():
            total += sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
        else:
            total += src.stat().st_size
    return total


# -- get -------------------------------------------------------------------------------


def _register_get(commands: Commands) -> None:
    get = commands.add_parser("get", help="read a file to stdout or -o, or a folder tree (-r) into -o")
    get.add_argument("source", metavar="REPO@REF:PATH")
    get.add_argument("-o", "--output", metavar="OUT", help="local file (or folder with -r)")
    get.add_argument("-r", "--recursive", action="store_true", help="every file under PATH, into the folder OUT")
    get.set_defaults(run=get_file)


def get_file(ctx: Context, args: argparse.Namespace) -> None:
    repo, ref, path = file_arg(args.source, need_path=not args.recursive)
    if args.recursive:
        if not args.output:
            raise InvalidArgument("get -r needs -o FOLDER")
        _get_tree(ctx, repo, ref, path, Path(args.output))
    else:
        reader = ctx.local_reader()  # a get from the embedded store never loads SQLAlchemy
        content = reader.open_file(repo, ref, path) if reader else None
        if content is None:
            content = ctx.store.open_file(repo, ref, path)
        if args.output:
            write_atomically(Path(args.output), content)
            return
        out = ctx.stdout_bytes
        for chunk in content:
            out.write(chunk)
        out.flush()


def _get_tree(ctx: Context, repo: str, ref: str, path: str, out: Path) -> None:
    """Every file under ``path`` into ``out``, written from the walked entries (a sync down: files
    already there with the right content are left alone)."""
    commit = ctx.store.inspect_commit(repo, ref).id  # one snapshot, even if the branch moves meanwhile
    prefix = path.strip("/")
    if prefix and not ctx.store.inspect_file(repo, commit, prefix).is_dir:  # one file: into the folder
        write_atomically(out / os.path.basename(prefix), ctx.store.open_file(repo, commit, prefix))
        return
    with byte_progress(ctx, "downloading", None) as tick:
        result = ctx.store.sync_down(repo, commit, prefix, str(out), progress=tick)
    if not (result.added or result.changed or result.unchanged):
        raise PathNotFound(f"{repo}@{ref}: no file or folder {path!r}")


def write_atomically(target: Path, chunks: Iterable[bytes]) -> None:
    """Write under a temporary name, then rename: readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.datumflow-part")
    try:
        with open(part, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


# -- ls, glob --------------------------------------------------------------------------


def _register_listing(commands: Commands) -> None:
    ls = add_json(commands.add_parser("ls", help="the files and folders inside a folder"))
    ls.add_argument("source", metavar="REPO@REF[:PATH]")
    ls.add_argument("--limit", type=int, metavar="N", help="at most N entries")
    ls.add_argument("--start-after", metavar="NAME", help="resume after this entry name (paging)")
    ls.set_defaults(run=list_files)
    glob = add_json(commands.add_parser("glob", help="files and folders matching a pattern (*, ?, **, {a,b})"))
    glob.add_argument("pattern", metavar="REPO@REF:PATTERN")
    glob.set_defaults(run=glob_files)


def list_files(ctx: Context, args: argparse.Namespace) -> None:
    repo, ref, path = file_arg(args.source, need_path=False)
    reader = ctx.local_reader()  # a small ls of the embedded store never loads SQLAlchemy
    infos = reader.list_files(repo, ref, path, start_after=args.start_after, limit=args.limit) if reader else None
    if infos is None:
        infos = ctx.store.list_files(repo, ref, path, start_after=args.start_after, limit=args.limit)
    emit(ctx, args, infos, file_table)


def glob_files(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.glob_files(*file_arg(args.pattern)), file_table)


def file_table(out: TextIO, infos: list[FileInfo]) -> None:
    rows = [(i.path + ("/" if i.is_dir else ""), i.type, human_size(i.size)) for i in infos]
    print_table(out, ("PATH", "TYPE", "SIZE"), rows)


# -- diff, rm, cp ----------------------------------------------------------------------


def _register_changes(commands: Commands) -> None:
    diff = add_json(commands.add_parser("diff", help="what changed: against the parent, or from OLD to NEW"))
    diff.add_argument("refs", metavar="REPO@REF[:PATH]", nargs="+",
                      help="NEW, or OLD NEW; a :PATH on the last one keeps the changes at or under that path")
    diff.set_defaults(run=diff_commits)
    rm = add_json(commands.add_parser("rm", help="delete a file, or a folder and everything under it"))
    rm.add_argument("target", metavar="REPO@BRANCH:PATH")
    rm.add_argument("--force", action="store_true", help=FORCE_HELP)
    rm.set_defaults(run=remove_file)
    cp = add_json(commands.add_parser("cp", help="copy a file or folder (no bytes move)"))
    cp.add_argument("source", metavar="SRC_REPO@REF:PATH")
    cp.add_argument("target", metavar="DST_REPO@BRANCH:PATH")
    cp.add_argument("--force", action="store_true", help=FORCE_HELP)
    cp.set_defaults(run=copy_file)


def diff_commits(ctx: Context, args: argparse.Namespace) -> None:
    if len(args.refs) > 2:
        raise InvalidArgument("diff takes one reference (against its parent) or two (OLD NEW)")
    last, _, path = args.refs[-1].partition(":")
    first = args.refs[0].partition(":")[0]
    repo, new = commit_arg(last)
    old_repo, old = commit_arg(first) if len(args.refs) == 2 else (repo, None)
    path = path.strip("/")
    changes = [
        c for c in ctx.store.diff(repo, old, new, old_repo=old_repo)
        if not path or c.path == path or c.path.startswith(path + "/")
    ]
    emit(ctx, args, changes, diff_table)


def diff_table(out: TextIO, entries: list[DiffEntry]) -> None:
    rows = [(e.change, e.path, human_size(e.old.size) if e.old else "-", human_size(e.new.size) if e.new else "-")
            for e in entries]
    print_table(out, ("CHANGE", "PATH", "OLD", "NEW"), rows)


def remove_file(ctx: Context, args: argparse.Namespace) -> None:
    repo, target, path = write_arg(args.target)
    if not path.strip("/"):
        raise InvalidArgument(f"expected REPO@BRANCH:PATH, got {args.target!r} (no path to delete)")
    emit(ctx, args, ctx.store.delete_file(repo, target, path, force=args.force), commit_id_line)


def copy_file(ctx: Context, args: argparse.Namespace) -> None:
    src = file_arg(args.source)
    dst_repo, dst_target, dst_path = write_arg(args.target)
    emit(ctx, args, ctx.store.copy_file(*src, dst_repo, dst_target, dst_path, force=args.force), commit_id_line)
