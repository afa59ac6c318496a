"""Go duration strings (``"30s"``, ``"1m30s"``), as Pachyderm specs write timeouts and ``@every``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

def parse_duration(text: str) -> float:
    """Seconds in a Go duration string: ``"30s"``, ``"1m30s"``, ``"500ms"``."""
    text = text.strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"{text!r} is not a duration like '30s', '5m' or '1h30m'")
    return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
