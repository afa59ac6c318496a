"""Links to input files in ``/pfs/out`` (Pachyderm's shuffle pattern): the output takes the input
file's stored content as it is — with ``emptyFiles`` too, where the datum saw empty files."""

from __future__ import annotations

import shutil

import pytest
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.jobs import JobState
from datumflow.storage_service.store.store import Store

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (Debian bubblewrap) is not installed")

# Absolute links made inside the datum's view, as the shuffle example's script makes them.
SHUFFLE = [
    "for f in $(find -L /pfs -path '*/images/*' -type f); do n=$(basename $f .jpeg); mkdir -p /pfs/out/$n;"
    " ln -s $f /pfs/out/$n/img.jpeg; done",
    "for f in $(find -L /pfs -path '*/prices/*' -type f); do n=$(basename $f .json); mkdir -p /pfs/out/$n;"
    " ln -s $f /pfs/out/$n/cost.json; done",
]


def _spec(name: str, cmd_stdin: list[str]) -> dict[str, object]:
    return {
        "pipeline": {"name": name},
        "input": {"union": [
            {"pfs": {"repo": "images", "glob": "/*.jpeg", "emptyFiles": True}},
            {"pfs": {"repo": "prices", "glob": "/*.json", "emptyFiles": True}},
        ]},
        "transform": {"image": "ubuntu:20.04", "cmd": ["/bin/bash"], "stdin": cmd_stdin},
    }


def test_links_to_inputs_keep_the_inputs_content_without_copying(store: Store, pipelines: Pipelines) -> None:
    photo, price = bytes(range(256)) * 20, b'{"price_usd": 100}\n'
    for repo, files in (("images", {"apple.jpeg": photo}), ("prices", {"apple.json": price})):
        store.create_repo(repo)
        with store.writing(repo, "master") as c:
            for path, data in files.items():
                store.put_file(repo, c.id, path, data)
    pipelines.create_pipeline(_spec("shuffle", SHUFFLE))
    (job,) = pipelines.process()
    assert job.state is JobState.SUCCESS, job.reason
    assert store.get_file("shuffle", "master", "apple/img.jpeg") == photo  # the datum saw an empty file
    assert store.get_file("shuffle", "master", "apple/cost.json") == price
    same = store.inspect_file("images", "master", "apple.jpeg")
    assert store.inspect_file("shuffle", "master", "apple/img.jpeg").chunks == same.chunks


def test_a_link_out_of_the_datums_view_still_fails(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("images")
    store.create_repo("prices")
    with store.writing("images", "master") as c:
        store.put_file("images", c.id, "a.jpeg", b"a")
    pipelines.create_pipeline(_spec("escape", ["ln -s /etc/passwd /pfs/out/passwd"]))
    (job,) = pipelines.process()
    assert job.state is JobState.FAILURE
    assert "outside the datum's /pfs" in (job.reason or "")
