"""The datum step under kfp.local against the live service: the datum cache decides what runs.

kfp.local has no execution cache (``kfp/local`` has no caching code), so a
second run of the same task really runs: what it skips comes from
datumflow's datum cache, visible in the job's counters.
"""

import pytest
from datumflow.kfp_components import datum_step

# One datum per top-level CSV: count its data rows.
COUNT_ROWS = '''
import os

def process(input_path, output_dir):
    with open(input_path) as fh:
        rows = sum(1 for line in fh if line.strip()) - 1
    name = os.path.basename(input_path)
    with open(os.path.join(output_dir, name + ".count"), "w") as out:
        out.write(str(rows))
'''


def _seed(client, repo: str) -> str:  # type: ignore[no-untyped-def]
    client.create_repo(repo)
    return str(client.put_files(repo, "master", [("a.csv", b"x,y\n1,2\n2,3\n"), ("b.csv", b"x,y\n5,5\n")]).id)


def test_datum_step_writes_an_output_commit_with_provenance(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    head = _seed(client, repo_name)
    name = f"{repo_name}-counts"
    task = datum_step(name=name, input_ref=f"{repo_name}@master", function=COUNT_ROWS, input_commit=head)
    out = task.outputs
    assert (out["processed"], out["skipped"], out["input_commit"]) == (2, 0, head)
    # The live service sees what the step committed through the store.
    commit = client.inspect_commit(name, out["commit"])
    assert commit.error is None and commit.is_finished
    assert head in commit.provenance
    spec_head = client.resolve(name, "spec")
    assert spec_head in commit.provenance  # the code is provenance too
    assert commit.metadata["job"] == out["job"]
    assert commit.metadata["kfp_run_id"] and commit.metadata["kfp_task"]  # the KFP run that made it
    assert client.get_file(name, commit.id, "a.csv.count") == b"2"
    assert client.get_file(name, commit.id, "b.csv.count") == b"1"


def test_a_second_run_reuses_the_datum_cache_not_kfp_cache(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    _seed(client, repo_name)
    name = f"{repo_name}-counts"
    first = datum_step(name=name, input_ref=f"{repo_name}@master", function=COUNT_ROWS).outputs
    again = datum_step(name=name, input_ref=f"{repo_name}@master", function=COUNT_ROWS).outputs
    # The task ran again (no KFP cache hit): the same input and code ran before, so its job's
    # output commit is the answer and no datum runs.
    assert again["job"] == first["job"] and again["commit"] == first["commit"]
    assert (again["processed"], again["skipped"]) == (0, 2)
    assert client.get_file(name, again["commit"], "a.csv.count") == b"2"
    # One new file: one datum runs.
    client.put_files(repo_name, "master", [("c.csv", b"x,y\n1,1\n1,1\n1,1\n")])
    third = datum_step(name=name, input_ref=f"{repo_name}@master", function=COUNT_ROWS).outputs
    assert (third["processed"], third["skipped"]) == (1, 2)
    assert client.get_file(name, third["commit"], "c.csv.count") == b"3"
    # New code: every datum runs again.
    changed = COUNT_ROWS.replace("- 1", "- 0")
    fourth = datum_step(name=name, input_ref=f"{repo_name}@master", function=changed).outputs
    assert (fourth["processed"], fourth["skipped"]) == (3, 0)
    assert client.get_file(name, fourth["commit"], "a.csv.count") == b"3"


def test_a_module_path_function(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    client.create_repo(repo_name)
    client.put_files(repo_name, "master", [("words/one.txt", b"hello"), ("words/two.txt", b"world")])
    task = datum_step(name=f"{repo_name}-copy", input_ref=f"{repo_name}@master", glob="/words/*",
                      function="shutil:copy")  # copy(src, dst_folder): a real importable function
    assert task.outputs["processed"] == 2
    assert client.get_file(f"{repo_name}-copy", task.outputs["commit"], "two.txt") == b"world"


def _log(capfd) -> str:  # type: ignore[no-untyped-def]
    captured = capfd.readouterr()
    return str(captured.out + captured.err)


@pytest.mark.slow  # the engine tries a failing datum three times
def test_a_failing_function_fails_the_step_and_leaves_no_finished_output(secret_env, client, repo_name, capfd):  # type: ignore[no-untyped-def]
    _seed(client, repo_name)
    name = f"{repo_name}-bad"
    with pytest.raises(RuntimeError):
        datum_step(name=name, input_ref=f"{repo_name}@master",
                   function="def process(i, o):\n    raise ValueError('boom')\n")
    assert "boom" in _log(capfd)
    assert [c for c in client.list_commits(name, "master") if c.error is None] == []


def test_a_moved_branch_is_refused(secret_env, client, repo_name, capfd):  # type: ignore[no-untyped-def]
    old = _seed(client, repo_name)
    client.put_files(repo_name, "master", [("d.csv", b"x,y\n")])
    with pytest.raises(RuntimeError):
        datum_step(name=f"{repo_name}-x", input_ref=f"{repo_name}@master", function=COUNT_ROWS, input_commit=old)
    assert "moved: its head is" in _log(capfd)


def test_the_datum_step_on_the_store_itself_shares_the_datum_cache(store_env, client, repo_name, monkeypatch):  # type: ignore[no-untyped-def]
    """A file:// address runs the engine on the store; the cache is the one the service uses."""
    _seed(client, repo_name)
    name = f"{repo_name}-counts"
    first = datum_step(name=name, input_ref=f"{repo_name}@master", function=COUNT_ROWS).outputs
    assert (first["processed"], first["skipped"]) == (2, 0)
    assert client.get_file(name, first["commit"], "b.csv.count") == b"1"  # the service sees it
    monkeypatch.setenv("DATUMFLOW_ADDRESS", store_env.url)
    monkeypatch.setenv("DATUMFLOW_TOKEN", store_env.token)
    again = datum_step(name=name, input_ref=f"{repo_name}@master", function=COUNT_ROWS).outputs
    assert (again["processed"], again["skipped"]) == (0, 2)  # over HTTP, from the same cache
