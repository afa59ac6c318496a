"""Property-based fuzzing of the served OpenAPI schema: no request may make the service answer 5xx.

Runs against the open (no-users, loopback) service so that generated calls get
past authentication and reach the store. Uses schemathesis' Python API (one
hypothesis run per operation), bounded to a few examples each.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from .conftest import Service

EXAMPLES = 25

# Tar uploads are raw bytes on the wire, like application/octet-stream.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")


@pytest.mark.slow
def test_no_server_errors(open_service: Service) -> None:
    with httpx.Client(base_url=open_service.url + "/api/v1") as http:  # something real to find
        http.post("/repos", json={"name": "fuzz", "exist_ok": True})
        http.put("/repos/fuzz/commits/master/content", params={"path": "a/b.csv"}, content=b"x,y\n1,2\n")
    schema = schemathesis.openapi.from_url(open_service.url + "/openapi.json")
    failures: list[str] = []
    statuses: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20

    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            if case.query and "timeout" in case.query:
                case.query["timeout"] = 0.1  # keep long polls short
            response = case.call(base_url=open_service.url, timeout=30)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query}: "
                                f"{response.status_code} {response.text[:200]}")

        run()
    assert not failures, "\n".join(failures[:10])
    assert len(statuses) >= 2 * len(operations)  # every operation was really exercised
    assert any(s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
    assert httpx.get(open_service.url + "/healthz").status_code == 200
