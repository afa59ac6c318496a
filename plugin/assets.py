"""``datumflow://repo@branch`` assets: URI sanitizing, an asset factory, and which commit triggered a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from airflow.sdk import Asset

__all__ = ["create_asset", "sanitize_uri", "triggering_commits"]


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's asset-URI handler: check ``datumflow://repo@branch`` and spell it canonically."""
    from .refs import parse_asset_uri

    repo, branch = parse_asset_uri(uri.geturl())
    return urlsplit(f"datumflow://{repo}@{branch}")


def create_asset(repo: str, branch: str = "master", **kwargs: Any) -> Asset:
    from airflow.sdk import Asset

    return Asset(uri=f"datumflow://{repo}@{branch}", **kwargs)


def triggering_commits(context: Any) -> list[dict[str, Any]]:
    """The commits whose asset events triggered this run: ``[{"repo", "branch", "commit"}, ...]``.

    Events come from the ``AssetWatcher`` (the commit is under ``payload``) or
    from the service's push (``{commit, repo, branch}`` directly in ``extra``).
    """
    out = []
    for uri, events in (context.get("triggering_asset_events") or {}).items():
        if not str(getattr(uri, "uri", uri)).startswith("datumflow://"):
            continue
        for event in events:
            extra: dict[str, Any] = dict(getattr(event, "extra", None) or {})
            payload = extra.get("payload")
            info: dict[str, Any] = payload if isinstance(payload, dict) else extra
            if info.get("commit"):
                out.append({"repo": info["repo"], "branch": info.get("branch"), "commit": info["commit"]})
    return out
