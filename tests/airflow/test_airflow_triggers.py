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
    CommitTrigger(repo="r", branch="b", after="a" * 32, path_glob="/*.csv", datumflow_conn_id="df", deadline=9e9),
    CommitFinishedTrigger(repo="r", commit="c" * 32, datumflow_conn_id="df", poll_interval=0.5),
    FileTrigger(repo="r", branch="master", pattern="/x/*", datumflow_conn_id="datumflow_local"),
    CommitSetTrigger(commit_set="s" * 32),
    CommitEventTrigger(repo="r", branch="dev", datumflow_conn_id="df", after="a" * 32, poll_interval=1,
                       ack_timeout=5),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_serialize_round_trips(trigger):
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs  # every argument survives


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_no_secret_is_serialized(trigger):
    """The serialized trigger lands in Airflow's database: it names the connection, never its address or token."""
    _, kwargs = trigger.serialize()
    assert not {"token", "address", "password"} & set(kwargs)
    assert "datumflow_conn_id" in kwargs
    with pytest.raises(TypeError):
        type(trigger)(**kwargs, token="secret")


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
                            poll_interval=0.1)

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
    event = asyncio.run(_first_event(CommitSetTrigger(commit_set=opened.commit_set)))
    assert event.payload["status"] == "error"
    assert "upstream exploded" in event.payload["message"] and opened.id in event.payload["message"]


def test_file_trigger_waits_for_the_file(connections, client, repo_name):
    client.create_repo(repo_name)
    trigger = FileTrigger(repo=repo_name, branch="master", pattern="/in/*.json", poll_interval=0.1)

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
    trigger = CommitEventTrigger(repo=repo_name, poll_interval=0.1)

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


async def _collect(agen, count, timeout=20.0):
    got = []

    async def take():
        async for event in agen:
            got.append(event.payload)
            if len(got) == count:
                return

    await asyncio.wait_for(take(), timeout)
    return got


class MemoryState:
    """The asset state store Airflow's triggerer injects into a watcher (a dict here: no triggerer runs)."""

    def __init__(self):
        self.values = {}

    async def aget(self, key, default=None):
        return self.values.get(key, default)

    async def aset(self, key, value):
        self.values[key] = value


def test_event_trigger_emits_every_commit_of_a_burst_in_order(connections, client, repo_name):
    client.create_repo(repo_name)
    client.put_file(repo_name, "master", "a", b"0")
    trigger = CommitEventTrigger(repo=repo_name, poll_interval=0.2, ack_timeout=0)

    async def scenario():
        agen = trigger.run()
        first = asyncio.create_task(_collect(agen, 5))
        await asyncio.sleep(0.5)  # the trigger has read the head it starts after
        made = [(await asyncio.to_thread(client.put_file, repo_name, "master", f"f{i}", b"x")).id for i in range(5)]
        got = await first
        await agen.aclose()
        return made, got

    made, got = asyncio.run(scenario())
    assert [g["commit"] for g in got] == made  # five commits within a poll: five events, oldest first


def test_event_trigger_resumes_after_its_persisted_cursor(connections, client, repo_name):
    """A commit made while the triggerer was down gets its event when a new trigger starts."""
    client.create_repo(repo_name)
    client.put_file(repo_name, "master", "a", b"0")
    state = MemoryState()

    async def first_life():
        trigger = CommitEventTrigger(repo=repo_name, poll_interval=0.1, ack_timeout=0)
        trigger.asset_state_store = state
        agen = trigger.run()
        task = asyncio.create_task(_collect(agen, 1))
        await asyncio.sleep(0.4)
        one = (await asyncio.to_thread(client.put_file, repo_name, "master", "b", b"1")).id
        got = await task
        await agen.aclose()
        return one, got

    one, got = asyncio.run(first_life())
    assert [g["commit"] for g in got] == [one]
    assert state.values[CommitEventTrigger.EMITTED_KEY] == one
    missed = [client.put_file(repo_name, "master", f"down{i}", b"2").id for i in range(2)]  # triggerer down

    async def second_life():
        trigger = CommitEventTrigger(repo=repo_name, poll_interval=0.1, ack_timeout=0)
        trigger.asset_state_store = state
        agen = trigger.run()
        got = await _collect(agen, 2)
        await agen.aclose()
        return got

    assert [g["commit"] for g in asyncio.run(second_life())] == missed


def test_event_trigger_waits_until_a_run_consumed_the_previous_commit(connections, client, repo_name):
    from datumflow.plugin.listener import CONSUMED_KEY

    client.create_repo(repo_name)
    client.put_file(repo_name, "master", "a", b"0")
    state = MemoryState()
    trigger = CommitEventTrigger(repo=repo_name, poll_interval=0.1, ack_timeout=30)
    trigger.asset_state_store = state

    async def scenario():
        agen = trigger.run()
        task = asyncio.create_task(_collect(agen, 2))
        await asyncio.sleep(0.4)
        made = [(await asyncio.to_thread(client.put_file, repo_name, "master", f"f{i}", b"x")).id for i in range(2)]
        await asyncio.sleep(1.0)
        assert state.values[CommitEventTrigger.EMITTED_KEY] == made[0]  # the second waits for the ack
        state.values[CONSUMED_KEY] = made[0]  # what the listener writes when a run consumed it
        got = await task
        await agen.aclose()
        return made, got

    made, got = asyncio.run(scenario())
    assert [g["commit"] for g in got] == made


def test_trigger_of_a_sensor_times_out_by_itself(connections, client, repo_name):
    """``dags test`` runs a trigger in line with no deferral timeout: the trigger keeps the deadline itself."""
    import time

    client.create_repo(repo_name)
    trigger = CommitTrigger(repo=repo_name, branch="master", poll_interval=0.2, deadline=time.time() + 1)
    started = time.monotonic()
    event = asyncio.run(_first_event(trigger))
    assert event.payload["status"] == "timeout"
    assert time.monotonic() - started < 10
