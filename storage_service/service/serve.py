"""``datumflow serve`` and ``datumflow auth``: run the HTTP service, administer its users.

Service processes are stateless: several may share one PostgreSQL database
(``--db``) and one object store (``--objects``). Each also runs the pipeline
jobs and cron ticks that are ready (jobs are claimed in the database, so
replicas never run one twice); ``--no-pipelines`` turns that off. A store whose database has
no users is served without tokens, and then only on a loopback address.

Standalone: ``python -m datumflow.storage_service.service.serve [serve] --root DIR …``
and ``python -m datumflow.storage_service.service.serve auth init --root DIR``. The CLI
calls :func:`register` to add both sub-commands to its own parser.
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from datumflow.storage_service.errors import DatumflowError, InvalidArgument
from datumflow.storage_service.service.auth import ROLES, Auth

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_loopback", "main", "register", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

log = logging.getLogger("datumflow.service")

_OPEN_WARNING = """
************************************************************************
*  datumflow: NO USERS ARE CONFIGURED - this service accepts requests  *
*  from anyone who can reach it, without a token. It binds to loopback *
*  only. Run `datumflow auth init` to create an admin and its token.   *
************************************************************************"""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=os.environ.get("DATUMFLOW_ROOT"),
                        help="store folder (default: the file:// --address, else ./.datumflow)")
    parser.add_argument("--db", default=os.environ.get("DATUMFLOW_DB"),
                        help="metadata database URL (default: SQLite inside the root)")
    parser.add_argument("--objects", default=os.environ.get("DATUMFLOW_OBJECTS"),
                        help="object store URL (default: the root's objects folder)")


def _open_store(args: argparse.Namespace) -> Any:
    from datumflow.storage_service.store.store import Store

    root = args.root or ".datumflow"
    root = root[len("file://"):] if root.startswith("file://") else root
    return Store(root, db_url=args.db, objects_url=args.objects)


def _run_from_cli(ctx: Any, args: argparse.Namespace) -> int:
    """Entry point for the ``datumflow`` CLI: the store is its ``--address`` unless ``--root`` is given."""
    if args.root is None:
        if "://" in ctx.address and not ctx.address.startswith("file://"):
            raise InvalidArgument(
                f"{args.command} works on a store's own database: give --root DIR or a file:// --address"
            )
        args.root = ctx.address
    return int(args.func(args))


def serve(args: argparse.Namespace) -> int:
    """Build the app over the store and run it under uvicorn until interrupted."""
    import uvicorn
    from datumflow.storage_service.service.app import create_app
    from datumflow.storage_service.service.observability import configure_logging

    logs = configure_logging(getattr(args, "log_format", "json"), args.log_level)
    try:
        return _serve(args, uvicorn, create_app)
    finally:
        logs.stop()


def _serve(args: argparse.Namespace, uvicorn: Any, create_app: Any) -> int:
    executor_config(args)  # a bad executor setting is refused before anything opens
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise InvalidArgument(f"--workers must be at least 1, not {workers}")
    store = _open_store(args)
    if workers > 1:
        try:
            _check_open_mode(store, args)  # once, in the supervisor; each worker opens the store itself
        finally:
            store.close()
        return _serve_workers(args, uvicorn, workers)
    app = _build_app(store, args, create_app, warn=True)
    engine = _start_pipelines(store, args)
    spouts = None
    if engine is not None:
        from datumflow.storage_service.service.spout_host import client_address, start_spouts

        spouts = start_spouts(engine, client_address(args.host, args.port))
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, log_config=None,
                    access_log=False)  # the service logs each request itself, off the event loop
    finally:
        if spouts is not None:
            spouts.stop()  # the spout processes end with the service
        if engine is not None:
            engine.stop_background()  # waits for the job in progress, if any
        store.close()
    return 0


def _build_app(store: Any, args: argparse.Namespace, create_app: Any, *, warn: bool) -> Any:
    from datumflow.storage_service.service.airflow_push import from_env

    push = from_env()
    if push is not None:
        store.on_commit_finished.append(push)
    auth = _check_open_mode(store, args) if warn else Auth(store.engine)
    # Open while there are no users; tokens are asked for as soon as one exists, without a restart.
    return create_app(store, auth=auth, s3_domain=args.s3_domain)


def _check_open_mode(store: Any, args: argparse.Namespace) -> Auth:
    """The store's Auth; a service without users is announced, and refused beyond loopback."""
    auth = Auth(store.engine)
    if not auth.has_users():
        log.warning(_OPEN_WARNING)
        print(_OPEN_WARNING, file=sys.stderr, flush=True)
        if not is_loopback(args.host):
            raise InvalidArgument(
                f"refusing to serve {args.host} without users: run `datumflow auth init` first, "
                "or bind to 127.0.0.1"
            )
    return auth


# -- several worker processes ------------------------------------------------------------------

_WORKER_ARGS = "DATUMFLOW_SERVE_WORKER_ARGS"
# Seconds a worker may take to answer the supervisor's health check: a new worker imports the
# service first, which takes a loaded machine more than uvicorn's default 5 s.
_WORKER_HEALTHCHECK = 60


def _serve_workers(args: argparse.Namespace, uvicorn: Any, workers: int) -> int:
    """``--workers N``: uvicorn's supervisor binds the socket once and runs N worker processes on it.

    Each worker is a replica of the service, as several ``serve`` processes on
    one database are (:func:`worker_app`): its own store, connection pool and,
    unless ``--no-pipelines``, its own job loop (jobs are claimed in the
    database, so no two workers run one job). The supervisor replaces a worker
    that dies, and on SIGINT/SIGTERM stops them all, each finishing its requests
    and the job it is running.
    """
    plain = (str, int, float, bool, list, type(None))
    os.environ[_WORKER_ARGS] = json.dumps({k: v for k, v in vars(args).items() if isinstance(v, plain)})
    uvicorn.run("datumflow.storage_service.service.serve:worker_app", factory=True, workers=workers,
                host=args.host, port=args.port, log_level=args.log_level, log_config=None, access_log=False,
                timeout_worker_healthcheck=_WORKER_HEALTHCHECK)
    return 0


def worker_app() -> Any:
    """The app of one ``serve --workers N`` worker process (uvicorn's factory; the arguments come in the
    environment): the store opened here, the job loop started and stopped with the app's lifespan."""
    from contextlib import asynccontextmanager

    from datumflow.storage_service.service.app import create_app
    from datumflow.storage_service.service.observability import configure_logging

    args = argparse.Namespace(**json.loads(os.environ[_WORKER_ARGS]))
    logs = configure_logging(getattr(args, "log_format", "json"), args.log_level)
    store = _open_store(args)
    app = _build_app(store, args, create_app, warn=False)

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        engine = _start_pipelines(store, args)
        try:
            yield
        finally:
            if engine is not None:
                engine.stop_background()  # waits for the job in progress, if any
            store.close()

    atexit.register(logs.stop)  # after uvicorn's last lines, which follow the lifespan's end
    app.router.lifespan_context = lifespan
    return app


def _start_pipelines(store: Any, args: argparse.Namespace) -> Any:
    """Tick crons and run ready jobs in this process, unless ``--no-pipelines``."""
    if getattr(args, "no_pipelines", False):
        return None
    engine = pipelines_for(store, args)
    engine.start_background(interval=getattr(args, "pipelines_interval", 1.0))
    return engine


def pipelines_for(store: Any, args: argparse.Namespace, *, runner: Any = None) -> Any:
    """The ``Pipelines`` a service runs, on the executor ``args`` choose; ``runner`` stands in for a cluster."""
    from datumflow.storage_service.pipelines.engine import Pipelines
    from datumflow.storage_service.pipelines.executors.select import build_executor

    return Pipelines(store, executor=build_executor(store, executor_config(args), runner=runner))


def executor_config(args: argparse.Namespace) -> Any:
    """``--executor-config FILE`` (YAML), then ``--executor`` and the ``--k8s-*`` options over it."""
    from dataclasses import replace

    from datumflow.storage_service.pipelines.executors.select import ExecutorConfig, load_config

    path = getattr(args, "executor_config", None)
    config = load_config(path) if path else ExecutorConfig()
    given: dict[str, Any] = {name: getattr(args, f"k8s_{name}", None) for name in _K8S_OPTIONS}
    k8s: dict[str, Any] = {k: v for k, v in given.items() if v not in (None, [])}
    if "node_selector" in k8s:
        k8s["node_selector"] = dict(_pair(v) for v in k8s["node_selector"])
    if "tolerations" in k8s:
        k8s["tolerations"] = [_toleration(v) for v in k8s["tolerations"]]
    kubernetes = replace(config.kubernetes, **k8s) if k8s else config.kubernetes
    return replace(config, executor=getattr(args, "executor", None) or config.executor, kubernetes=kubernetes)


_K8S_OPTIONS = ("namespace", "worker_image", "service_account", "node_selector", "tolerations", "batch_size",
                "concurrency")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidArgument(f"--k8s-node-selector takes LABEL=VALUE, not {text!r}")
    return key, value


def _toleration(text: str) -> dict[str, str]:
    """``KEY[=VALUE]:EFFECT`` as a toleration (``Equal`` with a value, ``Exists`` without)."""
    what, sep, effect = text.rpartition(":")
    if not sep or not what or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise InvalidArgument(f"--k8s-toleration takes KEY[=VALUE]:NoSchedule|PreferNoSchedule|NoExecute, not {text!r}")
    key, eq, value = what.partition("=")
    if eq:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


def _auth(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        auth = Auth(store.engine)
        args.store_root = store.root
        result = _AUTH_VERBS[args.auth_verb](auth, args)
    finally:
        store.close()
    if args.json:
        print(json.dumps(result))
    elif isinstance(result, dict) and "token" in result:
        print(result["token"])
    elif isinstance(result, dict) and "secret_access_key" in result:  # as ~/.aws/credentials spells it
        print(f"aws_access_key_id = {result['access_key_id']}\naws_secret_access_key = {result['secret_access_key']}")
    elif args.auth_verb == "s3-key-list":
        for key in result:
            print(key["access_key_id"])
    elif isinstance(result, list):
        for user in result:
            roles = ", ".join(f"{r}:{role}" for r, role in user["roles"].items())
            print(f"{user['name']}{' (admin)' if user['admin'] else ''}  {roles}")
    return 0


def _init(auth: Auth, args: argparse.Namespace) -> Any:
    return {"user": args.name, "token": auth.init(args.name)}


def _user_create(auth: Auth, args: argparse.Namespace) -> Any:
    auth.create_user(args.name, admin=args.admin)
    return {"user": args.name, "admin": args.admin}


def _user_delete(auth: Auth, args: argparse.Namespace) -> Any:
    auth.delete_user(args.name)
    return {"user": args.name, "deleted": True}


def _user_list(auth: Auth, _: argparse.Namespace) -> Any:
    return auth.list_users()


def _token_create(auth: Auth, args: argparse.Namespace) -> Any:
    return {"user": args.name, "token": auth.create_token(args.name)}


def _token_revoke(auth: Auth, args: argparse.Namespace) -> Any:
    auth.revoke_token(args.token)
    return {"revoked": True}


def _grant(auth: Auth, args: argparse.Namespace) -> Any:
    auth.grant(args.name, args.repo, args.role)
    return {"user": args.name, "repo": args.repo, "role": args.role}


def _revoke(auth: Auth, args: argparse.Namespace) -> Any:
    auth.revoke(args.name, args.repo)
    return {"user": args.name, "repo": args.repo, "revoked": True}


def _s3_keys(auth: Auth, args: argparse.Namespace) -> Any:
    from datumflow.storage_service.service.s3.keys import S3Keys
    from datumflow.storage_service.service.secrets import ServerKey

    return S3Keys(auth.engine, ServerKey.load(args.store_root))


def _s3_key_create(auth: Auth, args: argparse.Namespace) -> Any:
    auth.require_user(args.name)
    return _s3_keys(auth, args).create(args.name).to_dict()


def _s3_key_list(auth: Auth, args: argparse.Namespace) -> Any:
    auth.require_user(args.name)
    return [k.to_dict() for k in _s3_keys(auth, args).list(args.name)]


def _s3_key_revoke(auth: Auth, args: argparse.Namespace) -> Any:
    _s3_keys(auth, args).revoke(args.name, args.key_id)
    return {"user": args.name, "access_key_id": args.key_id, "revoked": True}


_AUTH_VERBS = {
    "init": _init, "user-create": _user_create, "user-delete": _user_delete, "user-list": _user_list,
    "token-create": _token_create, "token-revoke": _token_revoke, "grant": _grant, "revoke": _revoke,
    "s3-key-create": _s3_key_create, "s3-key-list": _s3_key_list, "s3-key-revoke": _s3_key_revoke,
}


def register(subparsers: Any) -> None:
    """Add ``serve`` and ``auth`` to a CLI's sub-parsers.

    Each verb sets ``func(args) -> int`` (standalone) and ``run(ctx, args)`` (the ``datumflow`` CLI).
    """
    p = subparsers.add_parser("serve", help="run the HTTP service")
    _store_options(p)
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--s3-domain", default=os.environ.get("DATUMFLOW_S3_DOMAIN"),
                   help="serve host-style S3 buckets under this domain (BUCKET.DOMAIN)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--log-format", default=os.environ.get("DATUMFLOW_LOG_FORMAT", "json"), choices=["json", "text"],
                   help="json: one JSON object per line with the request id (default); text: for people")
    p.add_argument("--no-pipelines", action="store_true",
                   help="do not run pipeline jobs, cron ticks and spouts in this process (another one does)")
    p.add_argument("--pipelines-interval", type=float, default=1.0, metavar="S",
                   help="seconds between looks for ready jobs (default 1)")
    p.add_argument("--workers", type=int, default=os.environ.get("DATUMFLOW_WORKERS", "1"), metavar="N",
                   help="worker processes sharing the port, each a replica with its own job loop (default 1; "
                        "about one per core)")
    _executor_options(p)
    p.set_defaults(func=serve, run=_run_from_cli)

    a = subparsers.add_parser("auth", help="users, tokens and roles (works on the store's database)")
    verbs = a.add_subparsers(dest="auth_group", required=True)

    def verb(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        _store_options(parser)
        parser.add_argument("--json", action="store_true", help="print one JSON document")
        parser.set_defaults(func=_auth, run=_run_from_cli, auth_verb=name)
        return parser

    verb(verbs.add_parser("init", help="create the first admin and print its token"), "init").add_argument(
        "name", nargs="?", default="admin")
    users = verbs.add_parser("user", help="create, delete, list users").add_subparsers(dest="user_verb", required=True)
    create = verb(users.add_parser("create", help="create a user"), "user-create")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="the user may do anything")
    verb(users.add_parser("delete", help="delete a user and its tokens"), "user-delete").add_argument("name")
    verb(users.add_parser("list", help="list users and their roles"), "user-list")
    toks = verbs.add_parser("token", help="create or revoke tokens").add_subparsers(dest="token_verb", required=True)
    verb(toks.add_parser("create", help="create a token for a user and print it"), "token-create").add_argument("name")
    verb(toks.add_parser("revoke", help="revoke a token"), "token-revoke").add_argument("token")
    keys = verbs.add_parser("s3-key", help="S3 key pairs (access key id + secret) of a user").add_subparsers(
        dest="s3_key_verb", required=True)
    verb(keys.add_parser("create", help="create a key pair and print it (the secret only this once)"),
         "s3-key-create").add_argument("name")
    verb(keys.add_parser("list", help="list a user's access key ids"), "s3-key-list").add_argument("name")
    revoke_key = verb(keys.add_parser("revoke", help="revoke a key pair"), "s3-key-revoke")
    revoke_key.add_argument("name")
    revoke_key.add_argument("key_id")
    grant = verb(verbs.add_parser("grant", help="give a user a role on a repo"), "grant")
    grant.add_argument("name")
    grant.add_argument("repo")
    grant.add_argument("role", choices=list(ROLES))
    revoke = verb(verbs.add_parser("revoke", help="take a user's role on a repo away"), "revoke")
    revoke.add_argument("name")
    revoke.add_argument("repo")


def _executor_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executor", "where the service runs datums (options override --executor-config)")
    g.add_argument("--executor", choices=["local", "kubernetes"], default=None,
                   help="local: subprocesses on this host (default); kubernetes: a pod per datum batch")
    g.add_argument("--executor-config", metavar="FILE", default=os.environ.get("DATUMFLOW_EXECUTOR_CONFIG"),
                   help="YAML: executor: local|kubernetes, kubernetes: {namespace, worker_image, ...}")
    g.add_argument("--k8s-namespace", metavar="NS", help="namespace of the datum pods (default: default)")
    g.add_argument("--k8s-image", dest="k8s_worker_image", metavar="IMAGE",
                   help="the worker image (fetch/upload containers; docker/worker.Dockerfile)")
    g.add_argument("--k8s-service-account", metavar="NAME", help="service account of the datum pods")
    g.add_argument("--k8s-node-selector", action="append", default=[], metavar="LABEL=VALUE",
                   help="node selector of the datum pods (repeat)")
    g.add_argument("--k8s-toleration", dest="k8s_tolerations", action="append", default=[],
                   metavar="KEY[=VALUE]:EFFECT", help="a toleration of the datum pods (repeat)")
    g.add_argument("--k8s-batch-size", type=int, metavar="N", help="datums per pod (default: parallelism pods)")
    g.add_argument("--k8s-concurrency", type=int, metavar="N",
                   help="pods of one job at once (default: the pipeline's parallelism)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "auth", "-h", "--help"):
        argv.insert(0, "serve")
    parser = argparse.ArgumentParser(prog="datumflow")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except DatumflowError as exc:
        print(f"datumflow: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
