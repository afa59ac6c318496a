"""Verbs of history: merge, revert, tag, bisect, and branch reset|protect|unprotect.

``merge`` prints the merge result; on conflicts it lists them path by path
(with ``--json``: the dry-run result, ``status: conflict``) and exits 1, with
nothing moved. ``bisect`` runs its command here, on this machine, whether the
store is embedded or a service.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from datumflow.storage_service.cli.base import Commands, Context, add_json, branch_arg, commit_arg, subcommands
from datumflow.storage_service.cli.output import emit, human_time, print_fields, print_table
from datumflow.storage_service.errors import InvalidArgument, MergeConflict
from datumflow.storage_service.model.core import Branch, Commit
from datumflow.storage_service.model.history import BisectResult, MergeResult, Protection, Tag
from datumflow.storage_service.names import check_branch_name

__all__ = ["register", "register_branch_verbs"]


def register(commands: Commands) -> None:
    merge = add_json(commands.add_parser("merge", help="merge a ref into a branch (fast-forward or three-way)"))
    merge.add_argument("source", metavar="SRC_REF", help="REPO@REF: a branch, tag or commit")
    merge.add_argument("dest", metavar="DEST_BRANCH", help="BRANCH or REPO@BRANCH (the same repo)")
    merge.add_argument("--strategy", choices=("ours", "theirs"), help="settle conflicts: dest wins or source wins")
    merge.add_argument("-m", "--message", default="", help="why: the merge commit's description")
    merge.add_argument("--check", dest="checks", action="append", default=[], metavar="CMD",
                       help="a command that must pass on the merge result (repeatable)")
    merge.add_argument("--dry-run", action="store_true", help="show what would happen; move nothing")
    merge.add_argument("--no-ff", dest="fast_forward", action="store_false",
                       help="make a merge commit even when a fast-forward would do (records who and why)")
    merge.set_defaults(run=merge_verb)

    revert = add_json(commands.add_parser("revert", help="a new commit undoing a commit's changes"))
    revert.add_argument("commit", metavar="REPO@COMMIT")
    revert.add_argument("--branch", help="the branch to revert on (default: the commit's own)")
    revert.add_argument("-m", "--message", default="")
    revert.set_defaults(run=revert_verb)

    tag = subcommands(commands.add_parser("tag", help="create, list, inspect, delete tags (immutable refs)"))
    create = add_json(tag.add_parser("create", help="name a commit; the name never moves"))
    create.add_argument("tag", metavar="REPO@TAG")
    create.add_argument("--commit", default="master", metavar="REF", help="what to tag (default: master)")
    create.add_argument("-m", "--message", default="")
    create.set_defaults(run=tag_create)
    listing = add_json(tag.add_parser("list", help="the tags of a repo"))
    listing.add_argument("repo", metavar="REPO")
    listing.set_defaults(run=tag_list)
    inspect = add_json(tag.add_parser("inspect", help="show a tag"))
    inspect.add_argument("tag", metavar="REPO@TAG")
    inspect.set_defaults(run=tag_inspect)
    delete = tag.add_parser("delete", help="delete a tag (its commit stays)")
    delete.add_argument("tag", metavar="REPO@TAG")
    delete.set_defaults(run=tag_delete)

    bisect = add_json(commands.add_parser("bisect", help="find the first bad commit between a good and a bad one"))
    bisect.add_argument("good", metavar="REPO@GOOD")
    bisect.add_argument("bad", metavar="REPO@BAD")
    bisect.add_argument("--run", dest="cmd", required=True, metavar="CMD",
                        help="run on each candidate's files (its working folder): exit 0 good, 125 skip, else bad")
    bisect.add_argument("--path", default="", help="check out only the files under this folder")
    bisect.set_defaults(run=bisect_verb)


def register_branch_verbs(verbs: Commands) -> None:
    """``branch reset|protect|unprotect|protections`` (the branch verb lives in :mod:`.store`)."""
    reset = add_json(verbs.add_parser("reset", help="move a branch back to an ancestor (needs --force)"))
    reset.add_argument("branch", metavar="REPO@BRANCH")
    reset.add_argument("--to", required=True, metavar="REF")
    reset.add_argument("--force", action="store_true", help="yes, drop the commits after REF from the branch")
    reset.set_defaults(run=branch_reset)
    protect = add_json(verbs.add_parser("protect", help="refuse direct writes: merges only"))
    protect.add_argument("branch", metavar="REPO@BRANCH")
    protect.add_argument("--check", dest="checks", action="append", default=[], metavar="CMD",
                         help="a command every merge result must pass (repeatable)")
    protect.set_defaults(run=branch_protect)
    unprotect = verbs.add_parser("unprotect", help="take direct writes again")
    unprotect.add_argument("branch", metavar="REPO@BRANCH")
    unprotect.set_defaults(run=branch_unprotect)
    listing = add_json(verbs.add_parser("protections", help="the protected branches of a repo"))
    listing.add_argument("repo", metavar="REPO")
    listing.set_defaults(run=branch_protections)


# -- merge and revert ------------------------------------------------------------------------


def merge_verb(ctx: Context, args: argparse.Namespace) -> int | None:
    repo, source = commit_arg(args.source)
    dest_repo, _, dest = args.dest.rpartition("@")
    if dest_repo and dest_repo != repo:
        raise InvalidArgument(f"merge within one repo: {args.source} and {args.dest} name two")
    check_branch_name(dest)
    call = {"strategy": args.strategy, "message": args.message, "checks": args.checks,
            "fast_forward": args.fast_forward}
    try:
        result = ctx.store.merge(repo, source, dest, dry_run=args.dry_run, **call)
    except MergeConflict as exc:
        conflicted = ctx.store.merge(repo, source, dest, dry_run=True, strategy=args.strategy,
                                     fast_forward=args.fast_forward)
        emit(ctx, args, conflicted, _merge_lines)
        sys.stderr.write(f"datumflow: error: {exc}\n")
        return 1
    emit(ctx, args, result, _merge_lines)
    return 1 if result.status == "conflict" else None


def _merge_lines(out: TextIO, r: MergeResult) -> None:
    if r.conflicts:
        rows = [(c.path, _side(c.base), _side(c.ours), _side(c.theirs)) for c in r.conflicts]
        print_table(out, ("CONFLICT", "BASE", "OURS (DEST)", "THEIRS (SOURCE)"), rows)
    head = r.commit.id if r.commit else "-"
    out.write(f"{r.status}: {r.repo}@{r.dest} -> {head} ({r.changed} path(s) from {r.source})\n")


def _side(info: object) -> str:
    return "absent" if info is None else f"{getattr(info, 'size', 0)} B {str(getattr(info, 'hash', ''))[:12]}"


def revert_verb(ctx: Context, args: argparse.Namespace) -> None:
    repo, ref = commit_arg(args.commit)
    commit = ctx.store.revert(repo, ref, branch=args.branch, message=args.message)
    emit(ctx, args, commit, _id_line)


def _id_line(out: TextIO, c: Commit) -> None:
    out.write(c.id + "\n")


# -- tags ---------------------------------------------------------------------------------------


def tag_create(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.create_tag(*branch_arg(args.tag), args.commit, message=args.message), _tag_fields)


def tag_list(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.list_tags(args.repo), _tag_table)


def tag_inspect(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.inspect_tag(*branch_arg(args.tag)), _tag_fields)


def tag_delete(ctx: Context, args: argparse.Namespace) -> None:
    ctx.store.delete_tag(*branch_arg(args.tag))


def _tag_table(out: TextIO, tags: list[Tag]) -> None:
    print_table(out, ("TAG", "COMMIT", "CREATED", "MESSAGE"),
                [(t.name, t.commit, human_time(t.created), t.message) for t in tags])


def _tag_fields(out: TextIO, t: Tag) -> None:
    print_fields(out, [("Tag", f"{t.repo}@{t.name}"), ("Commit", t.commit), ("Message", t.message),
                       ("Creator", t.creator or "-"), ("Created", human_time(t.created))])


# -- bisect ---------------------------------------------------------------------------------


def bisect_verb(ctx: Context, args: argparse.Namespace) -> int | None:
    repo, good = commit_arg(args.good)
    bad_repo, bad = commit_arg(args.bad)
    if bad_repo != repo:
        raise InvalidArgument("bisect within one repo: GOOD and BAD name two")
    result = ctx.store.bisect(repo, good, bad, args.cmd, path=args.path)
    emit(ctx, args, result, _bisect_lines)
    return None if result.first_bad else 1


def _bisect_lines(out: TextIO, r: BisectResult) -> None:
    for step in r.steps:
        out.write(f"{step.commit} {step.verdict} (exit {step.exit_code})\n")
    if r.first_bad is None:
        out.write(f"only skipped commits are left; the first bad one is among: {' '.join(r.candidates)}\n")
        return
    out.write(f"{r.first_bad} is the first bad commit ({r.runs} run(s))\n")
    for change in r.changes:
        out.write(f"  {change['change']:<9} {change['path']}\n")


# -- branch reset and protection ------------------------------------------------------------


def branch_reset(ctx: Context, args: argparse.Namespace) -> None:
    repo, name = branch_arg(args.branch)
    emit(ctx, args, ctx.store.reset_branch(repo, name, args.to, force=args.force), _head_line)


def _head_line(out: TextIO, b: Branch) -> None:
    out.write(f"{b.repo}@{b.name} -> {b.head}\n")


def branch_protect(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.protect_branch(*branch_arg(args.branch), checks=args.checks), _protection_table_one)


def branch_unprotect(ctx: Context, args: argparse.Namespace) -> None:
    ctx.store.unprotect_branch(*branch_arg(args.branch))


def branch_protections(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, ctx.store.list_protections(args.repo), _protection_table)


def _protection_table_one(out: TextIO, p: Protection) -> None:
    _protection_table(out, [p])


def _protection_table(out: TextIO, found: list[Protection]) -> None:
    print_table(out, ("BRANCH", "CHECKS"), [(p.branch, "; ".join(p.checks) or "-") for p in found])
