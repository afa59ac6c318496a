"""Verbs of the store's metadata: repo, branch, commit, commit-set, log,
provenance, subvenance, fsck, gc. Each maps its arguments to one store call.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from datumflow.storage_service.cli.base import (
    Commands,
    Context,
    add_json,
    branch_arg,
    commit_arg,
    meta_args,
    subcommands,
)
from datumflow.storage_service.cli.embedded import drive
from datumflow.storage_service.cli.output import byte_progress, emit, human_size, human_time, print_fields, print_table
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.core import Branch, Commit, ProvenanceEntry, Repo

__all__ = ["register"]


def register(commands: Commands) -> None:
    _register_repo(commands)
    _register_branch(commands)
    _register_commit(commands)
    _register_commit_set(commands)
    _register_history(commands)
    _register_maintenance(commands)


# -- repo ------------------------------------------------------------------------------


def _register_repo(commands: Commands) -> None:
    verbs = subcommands(commands.add_parser("repo", help="create, list, inspect, delete repos"))
    create = add_json(verbs.add_parser("create", help="create a repo"))
    create.add_argument("name", metavar="NAME")
    create.add_argument("-d", "--description", default="")
    create.set_defaults(run=repo_create)
    add_json(verbs.add_parser("list", help="list repos")).set_defaults(run=repo_list)
    inspect = add_json(verbs.add_parser("inspect", help="show a repo"))
    inspect.add_argument("name", metavar="NAME")
    inspect.set_defaults(run=repo_inspect)
    delete = verbs.add_parser("delete", help="delete a repo (gc reclaims its bytes)")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--force", action="store_true", help="even if other repos are provenant on it")
    delete.set_defaults(run=repo_delete)


def repo_create(ctx: Context, args: argparse.Namespace) -> None:
    repo = ctx.store.create_repo(args.name, args.description)
    emit(ctx, args, repo, lambda out, r: None)


def repo_list(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.list_repos(), _repo_table)


def repo_inspect(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.inspect_repo(args.name), _repo_fields)


def repo_delete(ctx: Context, args: argparse.Namespace) -> None:
    ctx.store.delete_repo(args.name, force=args.force)


def _repo_table(out: TextIO, repos: list[Repo]) -> None:
    rows = [(r.name, ",".join(r.branches), human_size(r.size_bytes), human_time(r.created), r.description)
            for r in repos]
    print_table(out, ("NAME", "BRANCHES", "SIZE", "CREATED", "DESCRIPTION"), rows)


def _repo_fields(out: TextIO, repo: Repo) -> None:
    print_fields(out, [
        ("Name", repo.name), ("Description", repo.description), ("Created", human_time(repo.created)),
        ("Branches", ", ".join(repo.branches)), ("Size", human_size(repo.size_bytes)),
    ])


# -- branch ----------------------------------------------------------------------------


def _register_branch(commands: Commands) -> None:
    verbs = subcommands(commands.add_parser("branch", help="create, list, inspect, delete branches"))
    create = add_json(verbs.add_parser("create", help="create a branch, or set its head / provenance"))
    create.add_argument("branch", metavar="REPO@BRANCH")
    create.add_argument("--head", metavar="REF", help="commit the branch points at (branch, id, master^…)")
    create.add_argument("--provenance", metavar="REPO@BRANCH", nargs="+", action="extend", default=[],
                        help="branches this one is computed from")
    create.set_defaults(run=branch_create)
    listing = add_json(verbs.add_parser("list", help="list the branches of a repo"))
    listing.add_argument("repo", metavar="REPO")
    listing.set_defaults(run=branch_list)
    inspect = add_json(verbs.add_parser("inspect", help="show a branch"))
    inspect.add_argument("branch", metavar="REPO@BRANCH")
    inspect.set_defaults(run=branch_inspect)
    delete = verbs.add_parser("delete", help="delete a branch (its commits stay)")
    delete.add_argument("branch", metavar="REPO@BRANCH")
    delete.add_argument("--force", action="store_true", help="even if other branches are provenant on it")
    delete.set_defaults(run=branch_delete)
    from datumflow.storage_service.cli.history import register_branch_verbs

    register_branch_verbs(verbs)


def branch_create(ctx: Context, args: argparse.Namespace) -> None:
    repo, name = branch_arg(args.branch)
    provenance = ["@".join(branch_arg(p)) for p in args.provenance]
    branch = ctx.store.create_branch(repo, name, head=args.head, provenance=provenance)
    emit(ctx, args, branch, lambda out, b: None)


def branch_list(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.list_branches(args.repo), _branch_table)


def branch_inspect(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.inspect_branch(*branch_arg(args.branch)), _branch_fields)


def branch_delete(ctx: Context, args: argparse.Namespace) -> None:
    ctx.store.delete_branch(*branch_arg(args.branch), force=args.force)


def _branch_table(out: TextIO, branches: list[Branch]) -> None:
    rows = [(b.name, b.head or "-", _refs(b.provenance), _refs(b.subvenance)) for b in branches]
    print_table(out, ("BRANCH", "HEAD", "PROVENANCE", "SUBVENANCE"), rows)


def _branch_fields(out: TextIO, branch: Branch) -> None:
    print_fields(out, [
        ("Branch", f"{branch.repo}@{branch.name}"), ("Head", branch.head or "-"),
        ("Provenance", _refs(branch.provenance)), ("Subvenance", _refs(branch.subvenance)),
        ("Owner", branch.owner or "-"),
    ])


def _refs(refs: tuple[Any, ...]) -> str:
    return ", ".join(map(str, refs)) or "-"


# -- commit ----------------------------------------------------------------------------


def _register_commit(commands: Commands) -> None:
    verbs = subcommands(commands.add_parser("commit", help="start, finish, inspect, wait for, delete, list commits"))
    start = add_json(verbs.add_parser("start", help="open a commit on a branch; prints its id"))
    start.add_argument("branch", metavar="REPO@BRANCH")
    _describe(start)
    start.add_argument("--force", action="store_true",
                       help="on a pipeline's output branch: an owner's repair by hand (refused otherwise)")
    start.set_defaults(run=commit_start)
    finish = add_json(verbs.add_parser("finish", help="finish an open commit (or fail it with --error)"))
    finish.add_argument("commit", metavar="REPO@COMMIT")
    _describe(finish)
    finish.add_argument("--error", metavar="MSG", help="fail the commit: its partial data is dropped")
    finish.set_defaults(run=commit_finish)
    inspect = add_json(verbs.add_parser("inspect", help="show a commit"))
    inspect.add_argument("commit", metavar="REPO@COMMIT")
    inspect.set_defaults(run=commit_inspect)
    wait = add_json(verbs.add_parser("wait", help="block until a commit is finished (or failed)"))
    wait.add_argument("commit", metavar="REPO@COMMIT")
    wait.add_argument("--timeout", type=float, metavar="SECONDS")
    wait.set_defaults(run=commit_wait)
    delete = verbs.add_parser("delete", help="drop an open commit, or a finished one nothing builds on")
    delete.add_argument("commit", metavar="REPO@COMMIT")
    delete.set_defaults(run=commit_delete)
    listing = add_json(verbs.add_parser("list", help="commits of a repo (or of a branch's history), newest first"))
    listing.add_argument("repo", metavar="REPO[@BRANCH]")
    listing.add_argument("--limit", type=int, metavar="N")
    listing.add_argument("--state", choices=("open", "finished", "failed"))
    listing.set_defaults(run=commit_list)
    sub = add_json(verbs.add_parser("subscribe", help="print each finished commit of a branch as it arrives"))
    sub.add_argument("branch", metavar="REPO@BRANCH")
    sub.add_argument("--new", action="store_true", help="only commits finished from now on")
    sub.add_argument("--count", type=int, metavar="N", help="stop after N commits")
    sub.add_argument("--timeout", type=float, metavar="SECONDS", help="stop after this long")
    sub.set_defaults(run=commit_subscribe)


def _describe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--message", metavar="MSG", help="description")
    parser.add_argument("--meta", metavar="K=V", action="append", help="metadata (repeat for more)")


def commit_start(ctx: Context, args: argparse.Namespace) -> None:
    repo, branch = branch_arg(args.branch)
    commit = ctx.store.start_commit(repo, branch, description=args.message or "", metadata=meta_args(args.meta),
                                    force=args.force)
    emit(ctx, args, commit, commit_id_line)


def commit_finish(ctx: Context, args: argparse.Namespace) -> None:
    repo, ref = commit_arg(args.commit)
    commit = ctx.store.finish_commit(
        repo, ref, description=args.message, metadata=meta_args(args.meta) or None, error=args.error
    )
    emit(ctx, args, commit, commit_id_line)


def commit_inspect(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.inspect_commit(*commit_arg(args.commit)), commit_fields)


def commit_wait(ctx: Context, args: argparse.Namespace) -> None:
    drive(ctx.store)
    emit(ctx, args, ctx.store.wait_commit(*commit_arg(args.commit), timeout=args.timeout), commit_fields)


def commit_subscribe(ctx: Context, args: argparse.Namespace) -> None:
    """Oldest first; with --json one list at the end (so --count or --timeout is required)."""
    import time

    if args.json and args.count is None and args.timeout is None:
        raise InvalidArgument("commit subscribe --json prints one document at the end: give --count or --timeout")
    repo, branch = branch_arg(args.branch)
    seen = {c.id for c in ctx.store.list_commits(repo, branch, state="finished")} if args.new else set()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    found: list[Commit] = []
    while args.count is None or len(found) < args.count:
        drive(ctx.store)
        for commit in reversed(ctx.store.list_commits(repo, branch, state="finished")):
            if commit.id not in seen and (args.count is None or len(found) < args.count):
                seen.add(commit.id)
                found.append(commit)
                if not args.json:
                    ctx.stdout.write(commit.id + "\n")
                    ctx.stdout.flush()
        if deadline is not None and time.monotonic() >= deadline:
            break
        if args.count is None or len(found) < args.count:
            time.sleep(0.2)
    if args.json:
        emit(ctx, args, found, commit_table)


def commit_delete(ctx: Context, args: argparse.Namespace) -> None:
    ctx.store.delete_commit(*commit_arg(args.commit))


def commit_list(ctx: Context, args: argparse.Namespace) -> None:
    repo, branch = branch_arg(args.repo) if "@" in args.repo else (args.repo, None)
    commits = ctx.store.list_commits(repo, branch, limit=args.limit, state=args.state)
    emit(ctx, args, commits, commit_table)


def commit_id_line(out: TextIO, commit: Commit) -> None:
    out.write(commit.id + "\n")


def commit_table(out: TextIO, commits: list[Commit]) -> None:
    rows = [(c.id, c.branch or "-", c.state.value, human_time(c.started), c.file_count,
             human_size(c.size_bytes), " ".join(p[:8] for p in c.parents) or "-", c.description) for c in commits]
    print_table(out, ("COMMIT", "BRANCH", "STATE", "STARTED", "FILES", "SIZE", "PARENTS", "DESCRIPTION"), rows)


def commit_fields(out: TextIO, c: Commit) -> None:
    fields: list[tuple[str, Any]] = [
        ("Commit", f"{c.repo}@{c.id}"), ("Branch", c.branch or "-"), ("Parent", c.parent or "-"),
        *([("Merged parent", c.merge_parent)] if c.merge_parent else []),
        ("State", c.state.value), ("Origin", c.origin.value), ("Description", c.description),
        ("Started", human_time(c.started)), ("Finished", human_time(c.finished) or "-"),
        ("Files", c.file_count), ("Size", human_size(c.size_bytes)), ("Commit set", c.commit_set),
        ("Provenance", ", ".join(c.provenance) or "-"),
    ]
    fields += [(f"Meta {k}", v) for k, v in sorted(c.metadata.items())]
    if c.error:
        fields.append(("Error", c.error))
    print_fields(out, fields)


# -- commit sets -----------------------------------------------------------------------


def _register_commit_set(commands: Commands) -> None:
    verbs = subcommands(commands.add_parser("commit-set", help="a commit and every commit it caused downstream"))
    inspect = add_json(verbs.add_parser("inspect", help="list the commits of a commit set"))
    inspect.add_argument("id", metavar="ID")
    inspect.set_defaults(run=commit_set_inspect)
    wait = add_json(verbs.add_parser("wait", help="block until every commit of the set is finished"))
    wait.add_argument("id", metavar="ID")
    wait.add_argument("--timeout", type=float, metavar="SECONDS")
    wait.set_defaults(run=commit_set_wait)


def commit_set_inspect(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.commit_set(args.id), _commit_set_table)


def commit_set_wait(ctx: Context, args: argparse.Namespace) -> None:
    drive(ctx.store)
    emit(ctx, args, ctx.store.wait_commit_set(args.id, timeout=args.timeout), _commit_set_table)


def _commit_set_table(out: TextIO, commits: list[Commit]) -> None:
    rows = [(c.repo, c.branch or "-", c.id, c.state.value, c.origin.value) for c in commits]
    print_table(out, ("REPO", "BRANCH", "COMMIT", "STATE", "ORIGIN"), rows)


# -- history and provenance ------------------------------------------------------------


def _register_history(commands: Commands) -> None:
    log = add_json(commands.add_parser("log", help="the history of a ref (both parents of merges), newest first"))
    log.add_argument("branch", metavar="REPO@REF")
    log.add_argument("--limit", type=int, metavar="N")
    log.add_argument("--first-parent", action="store_true", help="only the branch's own line, not merged ones")
    log.set_defaults(run=log_branch)
    for verb, what in (("provenance", "every commit this one was computed from"),
                       ("subvenance", "every commit computed from this one")):
        parser = add_json(commands.add_parser(verb, help=what))
        parser.add_argument("commit", metavar="REPO@COMMIT")
        parser.add_argument("--depth", type=int, metavar="N", help="levels to follow (1 = direct)")
        parser.set_defaults(run=provenance if verb == "provenance" else subvenance)


def log_branch(ctx: Context, args: argparse.Namespace) -> None:
    repo, ref = commit_arg(args.branch)
    emit(ctx, args, ctx.store.list_commits(repo, ref, limit=args.limit, first_parent=args.first_parent),
         commit_table)


def provenance(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.provenance(*commit_arg(args.commit), depth=args.depth), _provenance_table)


def subvenance(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.subvenance(*commit_arg(args.commit), depth=args.depth), _provenance_table)


def _provenance_table(out: TextIO, entries: list[ProvenanceEntry]) -> None:
    rows = [(e.depth, e.repo, e.branch or "-", e.commit, e.origin.value) for e in entries]
    print_table(out, ("DEPTH", "REPO", "BRANCH", "COMMIT", "ORIGIN"), rows)


# -- integrity and space ---------------------------------------------------------------


def _register_maintenance(commands: Commands) -> None:
    fsck = add_json(commands.add_parser("fsck", help="verify every reachable chunk and index node"))
    fsck.add_argument("--fast", action="store_true", help="check that chunks exist, do not re-read them")
    fsck.add_argument("--repair", action="store_true",
                      help="first fail abandoned open commits (lease expired or writer gone)")
    fsck.set_defaults(run=fsck_store)
    gc = add_json(commands.add_parser("gc", help="delete what no commit references"))
    gc.add_argument("--grace", type=float, metavar="SECONDS",
                    help="spare unreferenced objects younger than this (default: one hour); "
                    "writes in flight are safe whatever it is, 0 included")
    gc.set_defaults(run=gc_store)


def fsck_store(ctx: Context, args: argparse.Namespace) -> int:
    # A full check re-reads every chunk (size unknown up front: a counter); --fast reads none.
    with byte_progress(ctx, "verifying", 0 if args.fast else None) as tick:
        extra = {"progress": tick} if tick else {}
        report = ctx.store.fsck(verify_content=not args.fast, repair=args.repair, **extra)
    emit(ctx, args, report, _fsck_lines)
    if report["ok"]:
        return 0
    ctx.stderr.write(f"datumflow: error: fsck found {len(report['errors'])} problem(s)\n")
    return 1


def _fsck_lines(out: TextIO, report: dict[str, Any]) -> None:
    for commit in report.get("repaired", []):
        out.write(f"repaired: failed abandoned open commit {commit}\n")
    for error in report["errors"]:
        out.write(f"error: {error}\n")
    verdict = "ok" if report["ok"] else "FAILED"
    out.write(f"{verdict}: {report['nodes']} index nodes, {report['chunks']} chunks, "
              f"{human_size(report['bytes'])} verified\n")


def gc_store(ctx: Context, args: argparse.Namespace) -> None:
    extra = {} if args.grace is None else {"grace_seconds": args.grace}
    emit(ctx, args, ctx.store.gc(**extra), lambda out, r: print_fields(out, sorted(r.items())))
