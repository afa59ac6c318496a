from __future__ import annotations

import asyncio
import importlib

import pytest
from datumflow.plugin.triggers import (
    CommitEventTrigger,
    CommitFinishedTrigger,
    CommitSetTrigger,
    CommitTrigger,
    FileTrigger,
)

TRIGGERS = [
    CommitTrigger(repo="r", branch="b", after="a" * 32, path_glob="/*.csv", address="http://h:1", token="t"),
    CommitFinishedTrigger(repo="r", commit="c" * 32, address="http://h:1", poll_interval=0.5),
    FileTrigger(repo="r", branch="master", pattern="/x/*", address="file:///tmp/s"),
    CommitSetTrigger(commit_set="s" * 32, address="http://h:1"),
    CommitEventTrigger(repo="r", branch="dev", address="http://h:1", after="a" * 32, poll_interval=1),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_serialize_round_trips(trigger):
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs  # every argument survives


async def _first_event(trigger, timeout=20.0):
    agen = trigger.run()
    try:
        return await asyncio.wait_for(agen.__anext__(), timeout)
    finally:
        await agen.aclose()


def test_commit_trigger_fires_on_a_new_commit_matching_the_glob(connections, client, repo_name):
    client.create_repo(repo_name)
    first = client.put_file(repo_name, "master", "a.csv", b"1")
    trigger = CommitTrigger(repo=repo_name, branch="master", after=first.id, path_glob="/*.csv",
                            address=connections[0], poll_interval=0.1)

    async def scenario():
        task = asyncio.create_task(_first_event(trigger))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(client.put_file, repo_name, "master", "notes.txt", b"ignored")
        await asyncio.sleep(0.3)
        assert not task.done()  # a commit outside the glob does not count
        wanted = await asyncio.to_thread(client.put_file, repo_name, "master", "b.csv", b"2")
        return wanted, await task

    wanted, event = asyncio.run(scenario())
    assert event.payload["status"] == "success"
    assert event.payload["commit"]["commit"] == wanted.id


def test_commit_set_trigger_reports_the_failed_commit(connections, client, repo_name):
    client.create_repo(repo_name)
    opened = client.start_commit(repo_name, "master")
    client.finish_commit(repo_name, opened.id, error="upstream exploded")
    event = asyncio.run(_first_event(CommitSetTrigger(commit_set=opened.commit_set, address=connections[0])))
    assert event.payload["status"] == "error"
    assert "upstream exploded" in event.payload["message"] and opened.id in event.payload["message"]


def test_file_trigger_waits_for_the_file(connections, client, repo_name):
    client.create_repo(repo_name)
    trigger = FileTrigger(repo=repo_name, branch="master", pattern="/in/*.json", address=connections[0],
                          poll_interval=0.1)

    async def scenario():
        task = asyncio.create_task(_first_event(trigger))
        await asyncio.sleep(0.3)
        assert not task.done()
        await asyncio.to_thread(client.put_file, repo_name, "master", "in/x.json", b"{}")
        return await task

    event = asyncio.run(scenario())
    assert event.payload["paths"] == ["in/x.json"]


def test_event_trigger_yields_one_event_per_new_commit(connections, client, repo_name):
    client.create_repo(repo_name)
    client.put_file(repo_name, "master", "a", b"0")
    trigger = CommitEventTrigger(repo=repo_name, address=connections[0], poll_interval=0.1)

    async def scenario():
        agen = trigger.run()
        got = []

        async def collect():
            async for event in agen:
                got.append(event.payload)
                if len(got) == 2:
                    return

        task = asyncio.create_task(collect())
        made = []
        for i in range(2):
            await asyncio.sleep(0.4)
            made.append((await asyncio.to_thread(client.put_file, repo_name, "master", f"f{i}", b"x")).id)
        await asyncio.wait_for(task, 20)
        await agen.aclose()
        return made, got

    made, got = asyncio.run(scenario())
    assert [g["commit"] for g in got] == made
    assert got[0]["uri"] == f"datumflow://{repo_name}@master"
