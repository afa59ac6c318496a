"""The exception tree: pickling, builtin bases, HTTP status, names."""

from __future__ import annotations

import inspect
import pickle

import pytest
from datumflow.storage_service import errors

CLASSES = [
    obj for _, obj in inspect.getmembers(errors, inspect.isclass)
    if issubclass(obj, errors.DatumflowError)
]
# Built from a message alone (S3Error also takes its code, status and resource: see test_error_tree.py).
PLAIN = [c for c in CLASSES if c is not errors.S3Error]


def test_every_class_is_exported() -> None:
    assert {c.__name__ for c in CLASSES} <= set(errors.__all__)
    assert len(CLASSES) == 34


@pytest.mark.parametrize("klass", PLAIN, ids=lambda c: c.__name__)
def test_pickle_round_trip(klass: type[errors.DatumflowError]) -> None:
    original = klass(f"{klass.__name__}: something went wrong")
    again = pickle.loads(pickle.dumps(original))
    assert type(again) is klass
    assert str(again) == str(original) == again.message == original.message
    assert again.args == (original.message,)


@pytest.mark.parametrize("klass", PLAIN, ids=lambda c: c.__name__)
def test_rebuilt_from_name(klass: type[errors.DatumflowError]) -> None:
    rebuilt = errors.error_from_name(klass.__name__, "why")
    assert type(rebuilt) is klass and str(rebuilt) == "why"


@pytest.mark.parametrize(
    ("klass", "builtin", "status"),
    [
        (errors.InvalidArgument, ValueError, 400),
        (errors.RepoNotFound, FileNotFoundError, 404),
        (errors.BranchNotFound, FileNotFoundError, 404),
        (errors.CommitNotFound, FileNotFoundError, 404),
        (errors.PathNotFound, FileNotFoundError, 404),
        (errors.ObjectNotFound, FileNotFoundError, 404),
        (errors.Forbidden, PermissionError, 403),
        (errors.Unauthenticated, PermissionError, 401),
        (errors.AlreadyExists, FileExistsError, 409),
        (errors.CommitFinished, errors.Conflict, 409),
        (errors.BranchInUse, errors.Conflict, 409),
        (errors.CorruptObject, OSError, 500),
        (errors.Timeout, TimeoutError, 504),
        (errors.ServiceUnavailable, ConnectionError, 503),
        (errors.PipelineNotFound, FileNotFoundError, 404),
        (errors.JobNotFound, FileNotFoundError, 404),
        (errors.SpoutNotFound, FileNotFoundError, 404),
        (errors.TopicNotFound, FileNotFoundError, 404),
        (errors.CorruptOffsets, errors.Conflict, 409),
        (errors.MissingSecret, ValueError, 400),
    ],
)
def test_builtin_bases_and_status(klass: type[errors.DatumflowError], builtin: type, status: int) -> None:
    exc = klass("x")
    assert isinstance(exc, builtin) and isinstance(exc, errors.DatumflowError)
    assert errors.status_for(exc) == status


def test_unknown_name_gives_the_root() -> None:
    assert type(errors.error_from_name("Nope", "m")) is errors.DatumflowError
