"""Example Kubeflow pipeline: fit a line to versioned CSV data, commit the model with provenance.

    points@master (x,y CSV files)
        -> read_commit   (a Dataset artifact; output ``commit``: the data's commit id)
        -> fit_line      (least squares in plain Python)
        -> write_commit  (models@master, provenance = the data commit, metadata = this KFP run)

Every datumflow task gets the service address and token from the Kubernetes
Secret ``datumflow`` (keys ``address`` and ``token``). Compile with
``python kfp_examples/line_fit.py line_fit.yaml`` and upload to Kubeflow.
"""

import sys

from datumflow.kfp_components import component_options, read_commit, write_commit
from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Model, Output

SECRET = "datumflow"
SECRET_KEYS = {"address": "DATUMFLOW_ADDRESS", "token": "DATUMFLOW_TOKEN"}


@dsl.component(**component_options(needs_datumflow=False))
def fit_line(data: Input[Dataset], model: Output[Model]) -> float:
    """Least-squares ``y = a*x + b`` over every ``x,y`` row of the CSV files in ``data``; returns the RMSE."""
    import csv
    import json
    import math
    import os

    xs, ys = [], []
    for folder, _, names in sorted(os.walk(data.path)):
        for name in sorted(n for n in names if n.endswith(".csv")):
            with open(os.path.join(folder, name), newline="") as fh:
                for row in csv.DictReader(fh):
                    xs.append(float(row["x"]))
                    ys.append(float(row["y"]))
    if len(xs) < 2:
        raise ValueError(f"need at least two points to fit a line, found {len(xs)}")
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("every x is the same: the slope is undefined")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    rmse = math.sqrt(sum((slope * x + intercept - y) ** 2 for x, y in zip(xs, ys, strict=True)) / n)
    with open(model.path, "w") as fh:
        json.dump({"slope": slope, "intercept": intercept, "rmse": rmse, "points": n}, fh)
    model.metadata.update({"slope": slope, "intercept": intercept, "points": n,
                           "data_commit": data.metadata.get("commit", "")})
    return rmse


def with_datumflow_secret(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The service address/token reach the task from the Secret, never as parameters."""
    kubernetes.use_secret_as_env(task, secret_name=SECRET, secret_key_to_env=SECRET_KEYS)
    return task


@dsl.pipeline(name="datumflow-line-fit", description="fit a line to a datumflow commit; commit the model back")
def line_fit(data_ref: str = "points@master", model_repo: str = "models", model_branch: str = "master") -> str:
    read = with_datumflow_secret(read_commit(ref=data_ref))
    # A branch ref names different data over time: KFP must not reuse an old read.
    # Downstream tasks take the resolved commit id, so their cache keys follow the data.
    read.set_caching_options(False)
    fit = fit_line(data=read.outputs["data"])
    write = with_datumflow_secret(write_commit(
        data=fit.outputs["model"],
        repo=model_repo,
        branch=model_branch,
        path="model.json",
        provenance=[read.outputs["commit"]],
        description="line fit",
        pipeline_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_name=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
    ))
    write.set_caching_options(False)  # a commit is a side effect: write it on every run
    return write.output


if __name__ == "__main__":
    compiler.Compiler().compile(line_fit, sys.argv[1] if len(sys.argv) > 1 else "line_fit.yaml")
