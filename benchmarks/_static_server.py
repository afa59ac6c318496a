"""The service benchmark's peer: uvicorn (as ``serve`` runs it) with a bare ASGI app.

Every GET answers ``--size`` fixed bytes, every HEAD the same headers
without a body; nothing is looked up, authenticated or logged. The service's
request rates are divided by this server's, driven by the same clients.

    python benchmarks/_static_server.py --port P --size 1024
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn


def make_app(size: int) -> Any:
    body = os.urandom(size)
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(size).encode()),
        (b"etag", b'"0123456789abcdef0123456789abcdef"'),
        (b"last-modified", b"Mon, 01 Jan 2024 00:00:00 GMT"),
        (b"accept-ranges", b"bytes"),
    ]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    uvicorn.run(make_app(args.size), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
