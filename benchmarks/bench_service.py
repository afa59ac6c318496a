"""The HTTP service and its S3 gateway against local disk and a trivial server on loopback.

Figures:

* download and upload of one large random file (256 MiB; 32 MiB small),
  MB/s, through the HTTP API (``Client.open_file`` / ``Client.put_file``)
  and through the S3 gateway (boto3 ``get_object`` / ``put_object``), each as
  a ratio against reading / writing the same bytes from / to local disk in
  this process (the write followed by an fsync, as the service fsyncs its
  packs by default);
* requests/s under 32 concurrent clients (threads, each with its own httpx
  or boto3 client, a bounded number of requests each, loopback only) for a
  1 KiB file: S3 HEAD and GET, and through the HTTP API the file's metadata
  (``GET .../info``, the API's HEAD) and its content. The peer is the same
  load, from the same client code, against ``_static_server.py``: uvicorn
  (the server ``serve`` runs on) with a bare ASGI app answering the same
  bytes to every request.

The service runs as ``serve --no-pipelines`` in its own process with an
admin token (S3 requests are signed with it), on its default settings
(fsync on).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ._procs import datumflow_service, static_server

if TYPE_CHECKING:
    from .run import Context

MIB = 1024 * 1024
MB = 1_000_000
REPO = "bench"
BUCKET = f"master.{REPO}"
SMALL_KEY = "small.bin"
PIECE = MIB


@dataclass(frozen=True)
class Sizes:
    big: int  # bytes of the large file
    reps: int  # repetitions of each transfer (median)
    clients: int  # concurrent clients of the request-rate figures
    per_client: int  # requests each client sends per run
    rate_reps: int  # runs of each load, alternating service and peer (median)


FULL = Sizes(big=256 * MIB, reps=3, clients=32, per_client=16, rate_reps=3)
SMALL = Sizes(big=32 * MIB, reps=2, clients=32, per_client=10, rate_reps=2)


def run(ctx: Context) -> list[dict[str, Any]]:
    sizes = ctx.pick(FULL, SMALL)
    root = ctx.workdir / "store"
    with datumflow_service(root, ctx.workdir / "serve.log") as (url, token), \
            static_server(1024, ctx.workdir / "static.log") as peer_url:
        from datumflow.storage_service.client.http import Client

        with Client(url, token=token) as client:
            client.create_repo(REPO)
            client.put_file(REPO, "master", SMALL_KEY, os.urandom(1024))
            out = transfers(ctx, sizes, client, url, token)
        out += rates(ctx, sizes, url, token, peer_url)
    return out


# -- large transfers -----------------------------------------------------------------------------


def transfers(ctx: Context, sizes: Sizes, client: Any, url: str, token: str) -> list[dict[str, Any]]:
    src = ctx.workdir / "big.bin"
    s3 = _boto3(url, token)
    times: dict[str, list[float]] = {k: [] for k in ("disk-w", "http-up", "s3-up", "disk-r", "http-down", "s3-down")}
    for rep in range(sizes.reps):
        ctx.log(f"transfers rep {rep + 1}/{sizes.reps} ({sizes.big // MIB} MiB)")
        # fresh random bytes before every upload: the store deduplicates equal content
        _refresh(src, sizes.big)
        copy = ctx.workdir / "copy.bin"
        times["disk-w"].append(ctx.timed(partial(_write_local, src, copy)))
        copy.unlink()
        http_path = f"http-{rep}.bin"
        times["http-up"].append(ctx.timed(partial(client.put_file, REPO, "master", http_path, str(src))))
        _refresh(src, sizes.big)
        s3_key = f"s3-{rep}.bin"
        times["s3-up"].append(ctx.timed(partial(_s3_put, s3, s3_key, src)))

        times["disk-r"].append(ctx.timed(partial(_read_local, src, sizes.big)))
        times["http-down"].append(ctx.timed(partial(_http_download, client, http_path, sizes.big)))
        times["s3-down"].append(ctx.timed(partial(_s3_get, s3, s3_key, sizes.big)))
    src.unlink()
    s3.close()
    rate = {k: sizes.big / MB / ctx.median(v) for k, v in times.items()}
    size = f"{sizes.big // MIB} MiB"
    out = []
    for name, key, peer_key, peer in (
        ("service.http_download", "http-down", "disk-r", "local read"),
        ("service.http_upload", "http-up", "disk-w", "local write+fsync"),
        ("service.s3_get_object", "s3-down", "disk-r", "local read"),
        ("service.s3_put_object", "s3-up", "disk-w", "local write+fsync"),
    ):
        out.append(ctx.figure(
            name, rate[key], "MB/s", peer=f"{peer} {rate[peer_key]:.0f} MB/s ({size})",
            ratio=rate[key] / rate[peer_key], goal="report (ratio to local disk)", met=None,
        ))
    return out


def _refresh(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(size // (16 * MIB)):
            fh.write(os.urandom(16 * MIB))
        fh.write(os.urandom(size % (16 * MIB)))


def _write_local(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while piece := fin.read(PIECE):
            fout.write(piece)
        fout.flush()
        os.fsync(fout.fileno())


def _read_local(src: Path, size: int) -> None:
    n = 0
    with open(src, "rb") as fh:
        while piece := fh.read(PIECE):
            n += len(piece)
    _expect(n, size)


def _http_download(client: Any, path: str, size: int) -> None:
    _expect(sum(len(piece) for piece in client.open_file(REPO, "master", path)), size)


def _s3_put(s3: Any, key: str, src: Path) -> None:
    with open(src, "rb") as fh:
        s3.put_object(Bucket=BUCKET, Key=key, Body=fh)


def _s3_get(s3: Any, key: str, size: int) -> None:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    n = sum(len(piece) for piece in body.iter_chunks(PIECE))
    body.close()
    _expect(n, size)


def _expect(got: int, want: int) -> None:
    if got != want:
        raise AssertionError(f"transferred {got} bytes, expected {want}")


def _boto3(url: str, token: str) -> Any:
    (client,) = _boto3_clients(url, token, 1)
    return client


# -- request rates ----------------------------------------------------------------------------------


def rates(ctx: Context, sizes: Sizes, url: str, token: str, peer_url: str) -> list[dict[str, Any]]:
    api = f"/api/v1/repos/{REPO}/commits/master"
    ctx.log(f"building {sizes.clients} boto3 and httpx clients per server")
    s3 = {base: _boto3_clients(base, token, sizes.clients) for base in (url, peer_url)}
    http = {base: [httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
                   for _ in range(sizes.clients)] for base in (url, peer_url)}
    loads: dict[str, tuple[dict[str, list[Any]], Callable[[Any], None]]] = {
        "s3_head_1kib": (s3, _s3_head),
        "s3_get_1kib": (s3, _s3_get_small),
        "http_info_1kib": (http, lambda c: _http_get(c, f"{api}/info")),
        "http_get_1kib": (http, lambda c: _http_get(c, f"{api}/content")),
    }
    total = sizes.clients * sizes.per_client
    out = []
    try:
        for name, (clients, one) in loads.items():
            df, peer = [], []
            for rep in range(sizes.rate_reps):  # alternating, so that both see the same machine
                ctx.log(f"{name} rep {rep + 1}/{sizes.rate_reps}: {sizes.clients} clients x {sizes.per_client}")
                df.append(_load(clients[url], one, sizes.per_client))
                peer.append(_load(clients[peer_url], one, sizes.per_client))
            rate, peer_rate = total / ctx.median(df), total / ctx.median(peer)
            out.append(ctx.figure(
                f"service.{name}_rps", rate, "req/s",
                peer=f"bare uvicorn app {peer_rate:.0f} req/s ({sizes.clients} clients, {total} requests)",
                ratio=rate / peer_rate, goal="report (ratio to a trivial server)", met=None,
            ))
    finally:
        for pool in (*s3.values(), *http.values()):
            for c in pool:
                c.close()
    return out


def _load(clients: list[Any], one: Callable[[Any], None], per_client: int) -> float:
    """Seconds for one thread per client to send ``per_client`` requests each (after one untimed warm-up)."""
    for c in clients:  # connections open before the clock starts
        one(c)
    gate = threading.Barrier(len(clients) + 1)
    errors: list[BaseException] = []

    def loop(c: Any) -> None:
        gate.wait()
        try:
            for _ in range(per_client):
                one(c)
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return seconds


def _boto3_clients(base: str, token: str, count: int) -> list[Any]:
    """``count`` boto3 clients of one session (built here, in one thread; each is then used by one thread)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    config = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                    retries={"max_attempts": 1}, max_pool_connections=1)
    return [session.client("s3", endpoint_url=base + "/s3", aws_access_key_id=token, aws_secret_access_key=token,
                           region_name="us-east-1", config=config) for _ in range(count)]


def _s3_head(s3: Any) -> None:
    s3.head_object(Bucket=BUCKET, Key=SMALL_KEY)


def _s3_get_small(s3: Any) -> None:
    body = s3.get_object(Bucket=BUCKET, Key=SMALL_KEY)["Body"]
    if len(body.read()) != 1024:
        raise AssertionError("GetObject: not 1 KiB")


def _http_get(http: httpx.Client, path: str) -> None:
    response = http.get(path, params={"path": SMALL_KEY})
    if response.status_code != 200:
        raise AssertionError(f"GET {path}: {response.status_code} {response.text[:200]}")
