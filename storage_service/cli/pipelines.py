"""``datumflow pipeline|job|datum|lineage|worker``: thin verbs over :class:`~.pipelines.Pipelines`.

Against the embedded store nothing runs in the background, so the verbs that
create work (``pipeline create|update|run``) run the ready jobs before they
return (``--no-wait`` skips that), and ``job wait`` runs them while waiting.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

from datumflow.storage_service.cli.base import Commands, Context, add_json, file_arg, subcommands
from datumflow.storage_service.cli.output import emit, human_time, print_fields, print_json, print_table
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.datum import DatumInfo
from datumflow.storage_service.model.job import JobInfo
from datumflow.storage_service.model.lineage import LineageNode
from datumflow.storage_service.model.pipeline import PipelineInfo

if TYPE_CHECKING:
    from datumflow.storage_service.pipelines.run_local import LocalRun

# The engine, the spec parser (pydantic, PyYAML) and the worker steps load in the verbs that use
# them: against a service, ``job list`` or ``pipeline inspect`` imports neither the store nor them.
_ENGINE = "datumflow.storage_service.pipelines.engine"


def _load_specs(source: str) -> Any:
    from datumflow.storage_service.pipelines.spec import load_specs

    return load_specs(source)

__all__ = ["register"]


def register(commands: Commands) -> None:
    _pipeline(subcommands(commands.add_parser("pipeline", help="create, update, run and inspect pipelines")))
    _job(subcommands(commands.add_parser("job", help="jobs of pipelines")))
    _datum(subcommands(commands.add_parser("datum", help="datums of a job")))
    lineage = add_json(commands.add_parser("lineage", help="which datums and input files wrote a file"))
    lineage.add_argument("target", metavar="REPO@COMMIT:PATH")
    lineage.add_argument("--depth", type=int, help="levels of pipelines to follow upstream")
    lineage.set_defaults(run=lineage_cmd)
    _worker(subcommands(commands.add_parser("worker", help="run one datum's steps (what a pod runs)")))
    logs = add_json(commands.add_parser("logs", help="datum logs of a job, of one datum, or of a pipeline's last job"))
    which = logs.add_mutually_exclusive_group(required=True)
    which.add_argument("--job", metavar="JOB")
    which.add_argument("--pipeline", metavar="NAME")
    logs.add_argument("--datum", metavar="DATUM", help="only this datum (with --job)")
    logs.set_defaults(run=logs_cmd)


def _verb(verbs: Commands, name: str, help: str, run: Any, *, json: bool = True) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, help=help)
    if json:
        add_json(parser)
    parser.set_defaults(run=run)
    return parser


def _pipeline(verbs: Commands) -> None:
    for name, helptext in (("create", "create pipelines from a spec file"), ("update", "update pipelines")):
        p = _verb(verbs, name, helptext, create_cmd)
        p.add_argument("-f", dest="spec", required=True, metavar="SPEC", help="YAML or JSON pipeline spec(s)")
        p.add_argument("--reprocess", action="store_true", help="re-run every datum with the new spec")
        p.add_argument("--no-wait", action="store_true", help="do not run the jobs before returning")
        p.set_defaults(update=name == "update")
    _verb(verbs, "list", "list pipelines", list_cmd)
    _verb(verbs, "inspect", "show a pipeline", inspect_cmd).add_argument("name")
    delete = _verb(verbs, "delete", "delete a pipeline and its output repo", delete_cmd, json=False)
    delete.add_argument("name")
    delete.add_argument("--force", action="store_true", help="even if other pipelines read it")
    run = _verb(verbs, "run", "start a job on the current inputs", run_cmd)
    run.add_argument("name")
    run.add_argument("--reprocess", action="store_true", help="ignore the datum cache")
    run.add_argument("--no-wait", action="store_true", help="do not run the job before returning")
    run.add_argument("--for", dest="seconds", type=float, metavar="S",
                     help="a spout pipeline on the embedded store: run it S seconds (default: until stopped)")
    cron = _verb(verbs, "run-cron", "tick a pipeline's cron inputs now (and run the job)", run_cron_cmd)
    cron.add_argument("name")
    cron.add_argument("--no-wait", action="store_true", help="do not run the job before returning")
    for name, helptext in (("stop", "stop a pipeline: no jobs, cron ticks or spout until started"),
                           ("start", "start a stopped pipeline: commits that arrived meanwhile run")):
        p = _verb(verbs, name, helptext, stop_start_cmd)
        p.add_argument("name")
        p.set_defaults(stop=name == "stop")
    validate = _verb(verbs, "validate", "check pipeline specs without creating anything", validate_cmd)
    validate.add_argument("-f", dest="spec", required=True, metavar="SPEC", help="YAML or JSON spec(s); - is stdin")
    local = _verb(verbs, "run-local", "run a spec on real data without committing", run_local_cmd)
    local.add_argument("-f", dest="spec", required=True, metavar="SPEC")
    local.add_argument("--sample", type=int, metavar="N", help="run only the first N datums")
    local.add_argument("--out", metavar="DIR", help="where each datum's output is copied")


def _job(verbs: Commands) -> None:
    _verb(verbs, "list", "list jobs, newest first", job_list_cmd).add_argument("pipeline", nargs="?")
    _verb(verbs, "inspect", "show a job", job_inspect_cmd).add_argument("id")
    wait = _verb(verbs, "wait", "wait for a job to end (exit 1 if it failed)", job_wait_cmd)
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, metavar="S")


def _datum(verbs: Commands) -> None:
    _verb(verbs, "list", "list the datums of a job", datum_list_cmd).add_argument("job")
    restart = _verb(verbs, "restart", "run a job's failed datums again, in a new job", datum_restart_cmd)
    restart.add_argument("job")
    restart.add_argument("datum", nargs="?", help="(any failed datum of the job reruns; the others are reused)")
    inspect = _verb(verbs, "inspect", "show a datum, with its log", datum_inspect_cmd)
    inspect.add_argument("job")
    inspect.add_argument("datum")


def _worker(verbs: Commands) -> None:
    for name, helptext in (
        ("run-datum", "fetch the inputs, run the transform, upload /pfs/out"),
        ("fetch", "write the datum's inputs under --pfs (a pod's init step)"),
        ("upload", "store --pfs/out as the datum's output (after the user's container)"),
    ):
        p = _verb(verbs, name, helptext, worker_cmd)
        p.add_argument("--job", required=True)
        p.add_argument("--datum", required=True)
        p.add_argument("--pfs", required=True, metavar="DIR")
        p.set_defaults(step=name)


# -- handlers ---------------------------------------------------------------------------


def service(ctx: Context) -> Any:
    """The pipeline service: in-process for an embedded store, the client's otherwise."""
    store = ctx.store
    module = sys.modules.get("datumflow.storage_service.store.store")  # see cli.embedded.drive
    if module is not None and isinstance(store, module.Store):
        from datumflow.storage_service.pipelines.engine import Pipelines

        return Pipelines(store)
    remote = getattr(store, "pipelines", None)
    if remote is None:
        raise InvalidArgument(f"the service at {ctx.address} does not offer pipelines")
    return remote


def _drive(svc: Any, args: argparse.Namespace) -> None:
    engine = sys.modules.get(_ENGINE)  # only service() imports it, for an embedded store
    if not getattr(args, "no_wait", False) and engine is not None and isinstance(svc, engine.Pipelines):
        svc.process()


def create_cmd(ctx: Context, args: argparse.Namespace) -> None:
    svc = service(ctx)
    made = []
    for spec in _load_specs(args.spec):
        if args.update:
            made.append(svc.update_pipeline(spec, reprocess=args.reprocess))
        else:
            made.append(svc.create_pipeline(spec, reprocess=args.reprocess))
    _drive(svc, args)
    emit(ctx, args, made, _render_pipelines)


def list_cmd(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, service(ctx).list_pipelines(), _render_pipelines)


def inspect_cmd(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, service(ctx).inspect_pipeline(args.name), _render_pipeline)


def delete_cmd(ctx: Context, args: argparse.Namespace) -> None:
    service(ctx).delete_pipeline(args.name, force=args.force)


def run_cmd(ctx: Context, args: argparse.Namespace) -> int:
    svc = service(ctx)
    info = svc.inspect_pipeline(args.name)
    if info.spec.get("spout") is not None:
        return _run_spout(ctx, args, svc, info)
    commit = svc.run_pipeline(args.name, reprocess=args.reprocess)
    _drive(svc, args)
    job = svc.job_for_commit(commit)
    emit(ctx, args, job, _render_job)
    return 1 if job.state.value in ("failure", "killed") else 0


def _run_spout(ctx: Context, args: argparse.Namespace, svc: Any, info: PipelineInfo) -> int:
    """A spout runs until stopped: here in the foreground on the embedded store; a service runs its own."""
    from datumflow.storage_service.store.store import Store

    if not isinstance(ctx.store, Store):
        if info.state == "stopped":
            info = svc.start_pipeline(args.name)
        emit(ctx, args, info, _render_pipeline)  # the service keeps it running
        return 0
    from datumflow.storage_service.service.spout_host import run_spout_here

    try:
        status = run_spout_here(ctx.store, args.name, seconds=args.seconds)
    except KeyboardInterrupt:
        status = svc.inspect_pipeline(args.name).spout or {}
    emit(ctx, args, {"pipeline": args.name, **status}, _render_spout)
    return 0


def _render_spout(out: TextIO, status: dict[str, Any]) -> None:
    print_fields(out, [(k.replace("_", " "), v) for k, v in status.items() if k != "log"])
    if status.get("log"):
        out.write(f"log:\n{status['log']}")


def run_cron_cmd(ctx: Context, args: argparse.Namespace) -> int:
    svc = service(ctx)
    commit = svc.run_cron(args.name)
    _drive(svc, args)
    job = svc.job_for_commit(commit)
    emit(ctx, args, job, _render_job)
    return 1 if job.state.value in ("failure", "killed") else 0


def stop_start_cmd(ctx: Context, args: argparse.Namespace) -> None:
    svc = service(ctx)
    info = svc.stop_pipeline(args.name) if args.stop else svc.start_pipeline(args.name)
    if not args.stop:
        _drive(svc, args)
    emit(ctx, args, info, _render_pipeline)


def validate_cmd(ctx: Context, args: argparse.Namespace) -> None:
    specs = _load_specs(args.spec)  # every bad field of every spec refused here, nothing created
    emit(ctx, args, [{"name": s.name, "valid": True} for s in specs], _render_valid)


def _render_valid(out: TextIO, items: list[dict[str, Any]]) -> None:
    for item in items:
        out.write(f"{item['name']}: valid\n")


def datum_restart_cmd(ctx: Context, args: argparse.Namespace) -> int:
    svc = service(ctx)
    job = svc.inspect_job(args.job)
    if args.datum is not None:
        svc.inspect_datum(job.id, args.datum)  # a datum of that job, or a clear not-found
    commit = svc.run_pipeline(job.pipeline)
    _drive(svc, args)
    again = svc.job_for_commit(commit)
    emit(ctx, args, again, _render_job)
    return 1 if again.state.value in ("failure", "killed") else 0


def logs_cmd(ctx: Context, args: argparse.Namespace) -> None:
    svc = service(ctx)
    if args.pipeline is not None:
        spout = svc.inspect_pipeline(args.pipeline).spout
        if spout is not None:  # a spout has no jobs: its process's output
            row = {"pipeline": args.pipeline, "datum": "", "state": spout["state"], "log": spout.get("log", "")}
            emit(ctx, args, [row], _render_logs)
            return
        jobs = svc.list_jobs(args.pipeline)
        if not jobs:
            raise InvalidArgument(f"pipeline {args.pipeline} has no jobs yet")
        job_id = jobs[0].id
    else:
        job_id = args.job
    datums = [svc.inspect_datum(job_id, args.datum)] if args.datum else svc.list_datums(job_id)
    rows = [{"job": d.job, "datum": d.id, "state": d.state.value, "log": d.log or ""} for d in datums]
    emit(ctx, args, rows, _render_logs)


def _render_logs(out: TextIO, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        what = f"datum {row['datum'][:12]}" if row["datum"] else f"spout {row.get('pipeline', '')}"
        out.write(f"--- {what} ({row['state']}) ---\n{row['log']}")
        if row["log"] and not row["log"].endswith("\n"):
            out.write("\n")


def run_local_cmd(ctx: Context, args: argparse.Namespace) -> int:
    svc = service(ctx)
    (spec, *more) = _load_specs(args.spec)
    if more:
        raise InvalidArgument("run-local takes a file with one pipeline spec")
    result = svc.run_local(spec, sample=args.sample, out_dir=args.out)
    emit(ctx, args, result, _render_local)
    return 0 if result.ok else 1


def job_list_cmd(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, service(ctx).list_jobs(args.pipeline), _render_jobs)


def job_inspect_cmd(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, service(ctx).inspect_job(args.id), _render_job)


def job_wait_cmd(ctx: Context, args: argparse.Namespace) -> int:
    job = service(ctx).wait_job(args.id, timeout=args.timeout)
    emit(ctx, args, job, _render_job)
    return 0 if job.state.value == "success" else 1


def datum_list_cmd(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, service(ctx).list_datums(args.job), _render_datums)


def datum_inspect_cmd(ctx: Context, args: argparse.Namespace) -> None:
    emit(ctx, args, service(ctx).inspect_datum(args.job, args.datum), _render_datum)


def lineage_cmd(ctx: Context, args: argparse.Namespace) -> None:
    repo, ref, path = file_arg(args.target)
    emit(ctx, args, service(ctx).lineage(repo, ref, path, depth=args.depth), _render_lineage)


def worker_cmd(ctx: Context, args: argparse.Namespace) -> int:
    from datumflow.storage_service.pipelines import worker_steps

    svc = service(ctx)
    step = {
        "run-datum": worker_steps.run_datum, "fetch": worker_steps.fetch_datum, "upload": worker_steps.upload_datum,
    }[args.step]
    info = step(svc, args.job, args.datum, args.pfs)
    emit(ctx, args, info, _render_datum)
    return 0 if info.state.value != "failed" else 1


# -- rendering ----------------------------------------------------------------------------


def _render_pipelines(out: TextIO, items: list[PipelineInfo]) -> None:
    rows = [(p.name, p.state, p.version, ", ".join(p.inputs) or ("(spout)" if p.spec.get("spout") is not None else ""),
             p.output_branch, human_time(p.updated)) for p in items]
    print_table(out, ["NAME", "STATE", "VERSION", "INPUTS", "OUTPUT", "UPDATED"], rows)


def _render_pipeline(out: TextIO, p: PipelineInfo) -> None:
    print_fields(out, [("name", p.name), ("state", p.state), ("version", p.version),
                       ("spec commit", f"{p.name}@{p.spec_commit}"),
                       ("inputs", ", ".join(p.inputs)), ("output", f"{p.name}@{p.output_branch}"),
                       ("created", human_time(p.created)), ("updated", human_time(p.updated))])
    if p.spout is not None:
        out.write("spout:\n")
        print_fields(out, [(f"  {k.replace('_', ' ')}", v) for k, v in p.spout.items() if k != "log"])
    out.write("spec:\n")
    print_json(out, p.spec)


def _counters(j: JobInfo) -> str:
    return f"{j.processed} run, {j.skipped} skipped, {j.failed} failed of {j.total}"


def _render_jobs(out: TextIO, items: list[JobInfo]) -> None:
    rows = [(j.id, j.pipeline, j.state.value, _counters(j), human_time(j.created)) for j in items]
    print_table(out, ["ID", "PIPELINE", "STATE", "DATUMS", "CREATED"], rows)


def _render_job(out: TextIO, j: JobInfo) -> None:
    print_fields(out, [
        ("id", j.id), ("pipeline", j.pipeline), ("state", j.state.value),
        ("output", f"{j.pipeline}@{j.output_commit}"), ("datums", _counters(j)), ("recovered", j.recovered),
        ("inputs", ", ".join(f"{k}@{v}" for k, v in j.inputs.items())), ("started", human_time(j.started)),
        ("finished", human_time(j.finished)),
        ("inherits", f"the unchanged datums of job {j.base_job}" if j.base_job else "-"),
    ])
    if j.reason:
        out.write(f"reason:\n{j.reason}\n")


def _render_datums(out: TextIO, items: list[DatumInfo]) -> None:
    rows = [(d.id[:16], d.state.value, ", ".join(f"{i['name']}:/{i['path']}" for i in d.inputs), len(d.outputs))
            for d in items]
    print_table(out, ["ID", "STATE", "INPUTS", "OUTPUTS"], rows)


def _render_datum(out: TextIO, d: DatumInfo) -> None:
    print_fields(out, [
        ("id", d.id), ("job", d.job), ("state", d.state.value), ("hash", d.hash), ("tries", d.tries),
        ("reused from job", d.reused_from), ("error", d.error),
        ("inputs", ", ".join(f"{i['name']}:/{i['path']} @{i['commit'][:12]}" for i in d.inputs)),
        ("outputs", ", ".join(d.outputs)),
    ])
    if d.log:
        out.write(f"log:\n{d.log}")


def _render_lineage(out: TextIO, node: LineageNode) -> None:
    for depth, n in node.walk():
        by = f"  <- {n.pipeline} datum {n.datum[:12]}" if n.pipeline and n.datum else ""
        out.write(f"{'  ' * depth}{n.repo}@{n.commit[:12]}:{n.path}  {(n.hash or '')[:12]}{by}\n")


def _render_local(out: TextIO, r: LocalRun) -> None:
    for d in r.datums:
        status = "ok" if d.ok else f"FAILED: {d.error}"
        out.write(f"{d.datum[:12]}  {', '.join(d.inputs)}  {status}  ({len(d.outputs)} output files)\n")
        if not d.ok and d.log:
            out.write("".join(f"    {line}\n" for line in d.log.splitlines()[-20:]))
    out.write(f"ran {len(r.datums)} of {r.total} datums; outputs in {r.out_dir}\n")
