"""The component functions, exactly as KFP ships them to a pod.

KFP copies each function's source into the container command, so a body may
only use its own imports; each one imports :mod:`datumflow.kfp_components`
modules (installed in the image) and makes one call. ``from kfp import dsl``
and ``from kfp.dsl import *`` are in scope there, and here for the annotations.
"""

from typing import List, NamedTuple  # noqa: UP035 - KFP reads typing.List annotations

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

__all__ = ["datum_step", "read_commit", "wait_for_commit", "write_commit"]


def read_commit(ref: str, data: Output[Dataset]) -> NamedTuple("ReadOutputs", [("commit", str)]):  # type: ignore[valid-type]
    """Copy the files of ``repo@ref[:path]`` into ``data``; output ``commit``: the resolved commit id."""
    from collections import namedtuple

    from datumflow.kfp_components.runtime import read

    commit, metadata = read(ref, data.path)
    data.metadata.update(metadata)
    return namedtuple("ReadOutputs", ["commit"])(commit)


def write_commit(
    data: Input[Artifact],
    repo: str,
    branch: str = "master",
    provenance: List[str] = [],  # noqa: B006, UP006 - a KFP default, never mutated
    path: str = "",
    description: str = "",
    pipeline_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
) -> str:
    """Commit the artifact (file or folder) to ``repo@branch`` with ``provenance``; returns the commit id."""
    from datumflow.kfp_components.runtime import kfp_metadata, write

    metadata = {**kfp_metadata(pipeline_name, run_id, task_name), "kfp_artifact": data.uri}
    return write(data.path, repo, branch, dest=path, provenance=list(provenance), description=description,
                 metadata=metadata)


def wait_for_commit(repo: str, branch: str = "master", timeout: int = 600) -> str:
    """Block until ``repo@branch`` has a finished commit (at most ``timeout`` whole seconds); returns its id."""
    from datumflow.kfp_components.runtime import wait

    return wait(repo, branch, float(timeout))


def merge_branch(
    repo: str,
    source: str,
    dest: str = "master",
    strategy: str = "",
    message: str = "",
    pipeline_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
) -> str:
    """Merge ``repo@source`` into the branch ``dest`` (the publish step); returns the new head's id.

    Fails on conflicts (nothing moves) unless ``strategy`` is ``ours`` or ``theirs``; the merge commit
    records the KFP run.
    """
    from datumflow.kfp_components.runtime import kfp_metadata, merge

    return merge(repo, source, dest, strategy or None, message, kfp_metadata(pipeline_name, run_id, task_name))


def datum_step(
    name: str,
    input_ref: str,
    function: str,
    glob: str = "/*",
    input_commit: str = "",
    pipeline_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    run_id: str = dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
) -> NamedTuple(  # type: ignore[valid-type]
    "DatumOutputs", [("commit", str), ("job", str), ("input_commit", str), ("processed", int), ("skipped", int)]
):
    """Run ``function`` on every datum of ``input_ref`` (``repo@branch``) that the datum cache does not know."""
    from collections import namedtuple

    from datumflow.kfp_components.datum_step import run_datum_step
    from datumflow.kfp_components.runtime import kfp_metadata

    result = run_datum_step(name, input_ref, function, glob=glob, input_commit=input_commit,
                            metadata=kfp_metadata(pipeline_name, run_id, task_name))
    DatumOutputs = namedtuple("DatumOutputs", ["commit", "job", "input_commit", "processed", "skipped"])
    return DatumOutputs(result.commit, result.job, result.input_commit, result.processed, result.skipped)
