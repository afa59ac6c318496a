"""Cron inputs: when the next tick is due, and the tick commit itself.

Schedules are ``@every <duration>`` (``@every 30s``), the named ones
(``@hourly``, ``@daily``…) and five-field cron expressions; the latter need
the optional ``croniter`` package.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines.durations import parse_duration

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["check_schedule", "next_tick", "tick"]

_NAMED = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


def check_schedule(spec: str) -> None:
    next_tick(spec, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))


def next_tick(spec: str, after: dt.datetime) -> dt.datetime:
    """The first tick strictly after ``after``."""
    spec = _NAMED.get(spec.strip(), spec.strip())
    if spec.startswith("@every "):
        seconds = parse_duration(spec[len("@every "):])
        if seconds <= 0:
            raise ValueError("@every needs a positive duration")
        return after + dt.timedelta(seconds=seconds)
    if len(spec.split()) not in (5, 6):
        raise ValueError(f"{spec!r} is not a schedule: use '@every 30s', '@daily' or a 5-field cron expression")
    try:
        from croniter import croniter
    except ImportError:
        raise ValueError("cron expressions need the croniter package; '@every <duration>' works without it") from None
    try:
        nxt: dt.datetime = croniter(spec, after).get_next(dt.datetime)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{spec!r} is not a valid cron expression: {exc}") from None
    return nxt


def tick(store: Store, repo: str, when: dt.datetime, *, overwrite: bool) -> str:
    """Commit one tick file (named by its UTC time) into a cron repo; returns the commit id."""
    name = when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with store.writing(repo, "master", description=f"cron tick {name}", what="cron tick") as commit:
            if overwrite:
                for old in list(store.walk_files(repo, commit.id)):
                    store.delete_file(repo, commit.id, old.path)
            store.put_file(repo, commit.id, name, name.encode())
    except Exception as exc:
        raise InvalidArgument(f"cron tick into {repo} failed: {exc}") from exc
    assert commit.finished is not None
    return commit.finished.id
