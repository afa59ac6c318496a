"""Pachyderm-style pipelines through the command line, the embedded store acting like a cluster.

Specs are Pachyderm's JSON (camelCase), given on stdin with ``---`` between
them; user scripts read ``/pfs/<input>`` and ``PACH_DATUM_*`` literally, as
the joins and group examples do. ``put`` runs the downstream jobs and
``commit wait`` returns the finished output, with no service running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (Debian bubblewrap) is not installed"),
    pytest.mark.slow,  # about 50 CLI processes
]

JOIN = r'''
import glob, os
key = os.environ.get("PACH_DATUM_purchases_JOIN_ON") or os.environ["PACH_DATUM_returns_JOIN_ON"]
with open(f"/pfs/out/{key}.txt", "w") as out:
    for name in ("purchases", "returns"):
        for path in sorted(glob.glob(f"/pfs/{name}/*")):
            out.write(f"{name}:{open(path).read()}\n")
'''

GROUP = r'''
import glob, os
key = os.environ["PACH_DATUM_labs_GROUP_BY"]
files = sorted(os.path.basename(p) for p in glob.glob("/pfs/labs/*") + glob.glob("/pfs/more-labs/*"))
open(f"/pfs/out/{key}.txt", "w").write(",".join(files) + "\n")
'''


def _pfs(repo: str, glob: str, **extra: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


def _spec(name: str, input: dict[str, Any], cmd: list[str], **extra: Any) -> str:
    return json.dumps({"pipeline": {"name": name}, "input": input,
                       "transform": {"image": "python:3.11-slim", "cmd": cmd}, **extra}, indent=2)


@pytest.fixture
def run(tmp_path: Path) -> Any:
    code = tmp_path / "code"
    code.mkdir()
    (code / "join.py").write_text(JOIN)
    (code / "group.py").write_text(GROUP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATUMFLOW_")}
    env.update(DATUMFLOW_ADDRESS=f"file://{tmp_path / 'store'}", DATUMFLOW_FSYNC="0",
               DATUMFLOW_SANDBOX_BINDS=str(code))

    def cli(*args: str, stdin: str | None = None, rc: int = 0) -> str:
        proc = subprocess.run([sys.executable, "-m", "datumflow.storage_service.cli.main", *args], input=stdin,
                              capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
        assert proc.returncode == rc, proc.stderr
        return proc.stdout if rc == 0 else proc.stderr

    cli.code = code  # type: ignore[attr-defined]
    cli.tmp = tmp_path  # type: ignore[attr-defined]
    return cli


def test_join_group_and_union_specs_run_from_put(run: Any) -> None:
    data = run.tmp / "data"
    for folder, files in {"p": {"1.txt": "p1", "2.txt": "p2"}, "r": {"1.txt": "r1", "3.txt": "r3"},
                          "l": {"a-h1.csv": "", "b-h2.csv": ""}, "m": {"c-h1.csv": ""}}.items():
        (data / folder).mkdir(parents=True)
        for name, text in files.items():
            (data / folder / name).write_text(text)
    for repo in ("purchases", "returns", "labs", "more-labs", "images", "more-images"):
        run("repo", "create", repo)
    code = run.code
    specs = "\n---\n".join([
        _spec("inner", {"join": [_pfs("purchases", "/(*).txt", joinOn="$1"), _pfs("returns", "/(*).txt", joinOn="$1")]},
              ["python3", f"{code}/join.py"]),
        _spec("outer", {"join": [_pfs("purchases", "/(*).txt", joinOn="$1", outerJoin=True),
                                 _pfs("returns", "/(*).txt", joinOn="$1", outerJoin=True)]},
              ["python3", f"{code}/join.py"], parallelismSpec={"constant": 2}),
        _spec("grouped", {"group": [_pfs("labs", "/*-(*).csv", groupBy="$1"),
                                    _pfs("more-labs", "/*-(*).csv", groupBy="$1")]},
              ["python3", f"{code}/group.py"]),
        _spec("edges", {"union": [_pfs("images", "/*"), _pfs("more-images", "/*", name="images")]},
              ["sh", "-c", "for f in /pfs/images/*; do cp $f /pfs/out/; done"]),
    ])
    assert "inner: valid" in run("pipeline", "validate", "-f", "-", stdin=specs)
    run("pipeline", "create", "-f", "-", stdin=specs)
    run("put", "purchases@master", str(data / "p"), "-r")
    run("put", "returns@master", str(data / "r"), "-r")
    run("put", "labs@master", str(data / "l"), "-r")
    run("put", "more-labs@master", str(data / "m"), "-r")
    run("put", "images@master:a.png", "-", stdin="A")
    run("put", "more-images@master:b.png", "-", stdin="B")
    assert json.loads(run("commit", "wait", "inner@master", "--json"))["state"] == "finished"
    assert run("get", "inner@master:1.txt") == "purchases:p1\nreturns:r1\n"
    assert json.loads(run("ls", "inner@master", "--json"))[0]["path"] == "1.txt"
    outer = {f["path"] for f in json.loads(run("ls", "outer@master", "--json"))}
    assert outer == {"1.txt", "2.txt", "3.txt"}
    assert run("get", "outer@master:3.txt") == "returns:r3\n"
    assert run("get", "grouped@master:h1.txt") == "a-h1.csv,c-h1.csv\n"
    assert run("get", "grouped@master:h2.txt") == "b-h2.csv\n"
    assert {f["path"] for f in json.loads(run("ls", "edges@master", "--json"))} == {"a.png", "b.png"}


def test_waits_logs_diff_subscribe_and_refusals(run: Any) -> None:
    run("repo", "create", "words")
    spec = _spec("count", _pfs("words", "/*"), ["sh", "-c", "echo $(wc -c < $words) > /pfs/out/$(basename $words)"])
    run("pipeline", "create", "-f", "-", stdin=spec)
    run("put", "words@master:a", "-", "--no-run", stdin="hello")
    assert json.loads(run("job", "list", "count", "--json"))[0]["state"] == "created"  # --no-run left it
    assert json.loads(run("commit", "wait", "count@master", "--json"))["state"] == "finished"  # wait drives it
    first = json.loads(run("commit", "inspect", "count@master", "--json"))["id"]
    run("put", "words@master:sub/b", "-", stdin="hi")
    changes = json.loads(run("diff", f"count@{first}", "count@master:sub", "--json"))
    assert [c["path"] for c in changes] == ["sub"] or [c["path"] for c in changes] == ["sub/b"] or changes == []
    logs = json.loads(run("logs", "--pipeline", "count", "--json"))
    assert logs and all(row["state"] in ("success", "skipped") for row in logs)
    (seen,) = json.loads(run("commit", "subscribe", "count@master", "--count", "1", "--json"))
    assert seen["state"] == "finished"
    bad = _spec("broken", {"join": [_pfs("words", "/(*)", joinOn="$2"), _pfs("words", "/(*)", joinOn="$1", name="w")]},
                ["true"])
    assert "has 1 capture group" in run("pipeline", "create", "-f", "-", stdin=bad, rc=1)
    assert "broken" not in run("repo", "list")  # nothing was created
    assert "never closed" in run("pipeline", "validate", "-f", "-", stdin=_spec("g", _pfs("words", "/[a"), ["true"]),
                                 rc=1)


def test_cron_ticks_with_run_cron_and_fixed_output_names_merge(run: Any) -> None:
    spec = _spec("scrape", {"cron": {"name": "tick", "spec": "@every 1h"}},
                 ["sh", "-c", "date -u +%s >> /pfs/out/log.txt"])
    run("pipeline", "create", "-f", "-", stdin=spec)
    job = json.loads(run("pipeline", "run-cron", "scrape", "--json"))
    assert job["state"] == "success"
    time.sleep(1.01 - time.time() % 1)  # a tick is named by its second, as Pachyderm names it: the next one
    job = json.loads(run("pipeline", "run-cron", "scrape", "--json"))
    assert job["state"] == "success", job
    # Two tick files, two datums, one output name: merged as Pachyderm merges it.
    assert len(run("get", "scrape@master:log.txt").split()) == 2
    lineage = json.loads(run("lineage", "scrape@master:log.txt", "--json"))
    assert len(lineage["datums"]) == 2


SPOUT_SH = """#!/bin/sh
i=0
while [ $i -lt 2 ]; do
  i=$((i+1)); echo "event $i" > /tmp/e.txt
  datumflow put "$PACH_OUTPUT_REPO@master:event-$i.txt" /tmp/e.txt || exit 9
done
echo "events written"
exec sleep 3600
"""


def test_stop_start_and_a_spout_from_the_command_line(run: Any) -> None:
    (run.code / "spout.sh").write_text(SPOUT_SH)
    spout = json.dumps({"pipeline": {"name": "events"}, "spout": {},
                        "transform": {"image": "alpine:3", "cmd": ["sh", str(run.code / "spout.sh")]}})
    count = _spec("count", _pfs("events", "/*"), ["sh", "-c", "wc -c < $events > /pfs/out/$(basename $events)"])
    run("pipeline", "create", "-f", "-", stdin=spout + "\n---\n" + count)
    listed = json.loads(run("pipeline", "list", "--json"))
    assert {p["name"]: p["state"] for p in listed} == {"events": "running", "count": "running"}
    # The spout runs in the foreground for a while: its commits run `count` downstream.
    status = json.loads(run("pipeline", "run", "events", "--for", "20", "--json"))
    assert status["pipeline"] == "events" and status["state"] == "stopped" and status["restarts"] == 0, status
    assert run("get", "count@master:event-2.txt").strip() == "8"
    assert "events written" in run("logs", "--pipeline", "events")  # a spout's logs are its process's output

    stopped = json.loads(run("pipeline", "stop", "count", "--json"))
    assert stopped["state"] == "stopped"
    (run.tmp / "late.txt").write_text("late!")
    # The spout's output branch is written by the spout alone; its owner may still repair it.
    assert "output branch of pipeline events" in run("put", "events@master:late.txt", str(run.tmp / "late.txt"), rc=1)
    run("put", "events@master:late.txt", str(run.tmp / "late.txt"), "--force")
    assert "late.txt" not in run("ls", "count@master")  # no job while stopped
    started = json.loads(run("pipeline", "start", "count", "--json"))
    assert started["state"] == "running"
    assert run("get", "count@master:late.txt").strip() == "5"  # start ran what arrived meanwhile
    assert "not found" in run("pipeline", "start", "nope", rc=1)
