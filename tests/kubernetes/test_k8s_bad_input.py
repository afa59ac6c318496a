"""Bad input is refused with a clear error before any pod exists."""

from __future__ import annotations

import json
from typing import Any

import pytest
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines.executors.pod import Batch, PodSettings, build_pod, make_batches, validate
from datumflow.storage_service.pipelines.spec import parse_spec


def spec(**extra: Any) -> dict[str, Any]:
    transform = {"image": "alpine:3", "cmd": ["sh"], **extra.pop("transform", {})}
    return {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}}, "transform": transform, **extra}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("cpu", "2x", r"resource_requests\.cpu"),
    ("memory", "lots", "'lots' is not a quantity"),
])
def test_resources_that_do_not_parse(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_spec(spec(resource_requests={field: value}))


def test_resource_overrides_are_checked_too() -> None:
    with pytest.raises(InvalidArgument, match=r"resources.limits.cpu: '2x' is not a Kubernetes quantity"):
        validate(parse_spec(spec()), PodSettings(), {"limits": {"cpu": "2x"}})


@pytest.mark.parametrize("image", ["", "   "])
def test_an_empty_image(image: str) -> None:
    with pytest.raises(InvalidArgument, match=r"transform\.image is empty"):
        validate(parse_spec(spec(transform={"image": image})), PodSettings())


def test_an_empty_worker_image() -> None:
    with pytest.raises(InvalidArgument, match="worker image is empty"):
        validate(parse_spec(spec()), PodSettings(worker_image=""))


@pytest.mark.parametrize("patch", [
    [{"op": "frobnicate", "path": "/spec"}],
    [{"op": "replace", "path": "/spec/nothing/here", "value": 1}],
    [{"op": "add", "path": "/spec/x"}],
    [{"op": "test", "path": "/kind", "value": "Deployment"}],
])
def test_a_pod_patch_that_is_not_valid_json_patch(patch: list[dict[str, Any]]) -> None:
    parsed = parse_spec(spec(pod_patch=json.dumps(patch)))
    with pytest.raises(InvalidArgument, match="pod_patch cannot be applied"):
        validate(parsed, PodSettings())


def test_a_pod_patch_that_is_not_a_patch_at_all() -> None:
    with pytest.raises(InvalidArgument, match="pod_patch"):
        parse_spec(spec(pod_patch='{"op": "add"}'))


def test_no_datums_make_no_batches_and_an_empty_batch_no_pod() -> None:
    assert make_batches("j" * 32, "p", []) == []
    with pytest.raises(InvalidArgument, match="has no datums"):
        build_pod(parse_spec(spec()), Batch("j" * 32, "p", 0, []), PodSettings())


@pytest.mark.parametrize(("n", "size", "count", "sizes"), [
    (5, 2, None, [2, 2, 1]), (5, None, 2, [3, 2]), (1, None, 4, [1]), (4, 4, None, [4]),
])
def test_batches_keep_order_and_sizes(n: int, size: int | None, count: int | None, sizes: list[int]) -> None:
    ids = [f"{i:064d}" for i in range(n)]
    batches = make_batches("j" * 32, "p", ids, size=size, count=count)
    assert [len(b.datums) for b in batches] == sizes
    assert [d for b in batches for d in b.datums] == ids
    assert Batch.from_dict(batches[0].to_dict()) == batches[0]
