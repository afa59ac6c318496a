"""The one exception tree of datumflow.

Every error raised on purpose by datumflow derives from :class:`DatumflowError`.
The HTTP layer maps each class to a status code in one place
(:data:`HTTP_STATUS`), and the client maps the code and the class name back,
so a caller catches the same class whether the store is embedded or remote::

    DatumflowError
    ├── InvalidArgument (ValueError)         400  bad name, path, ref, spec, option
    ├── NotFound (FileNotFoundError)         404
    │   ├── RepoNotFound
    │   ├── BranchNotFound
    │   ├── CommitNotFound
    │   ├── PathNotFound
    │   ├── TagNotFound
    │   └── ObjectNotFound                   a chunk or index node is missing
    ├── Forbidden (PermissionError)          403  authenticated, but not allowed
    │   └── ProtectedBranch                  a direct write to a protected branch or a tag
    ├── Unauthenticated (PermissionError)    401  no or unknown token
    ├── Conflict                             409
    │   ├── AlreadyExists (FileExistsError)
    │   ├── CommitFinished                   writing into a finished commit
    │   ├── CommitOpen                       the operation needs a finished commit
    │   ├── BranchInUse                      other branches are provenant on it
    │   ├── ConcurrentUpdate                 a compare-and-swap kept losing
    │   ├── MergeConflict                    both sides changed a path differently
    │   └── CheckFailed                      a merge check refused the merge result
    ├── CorruptObject (OSError)              500  stored bytes do not match their hash
    ├── Timeout (TimeoutError)               504  waiting for a commit or job
    ├── ServiceUnavailable (ConnectionError) 503  the service cannot be reached
    └── SchemaMismatch                       503  the database needs 'datumflow db upgrade'

All of them pickle (triggers and executors send them across processes): each
keeps its message as its only argument.
"""

from __future__ import annotations

__all__ = [
    "HTTP_STATUS",
    "AlreadyExists",
    "BranchInUse",
    "BranchNotFound",
    "CheckFailed",
    "CommitFinished",
    "CommitNotFound",
    "CommitOpen",
    "ConcurrentUpdate",
    "Conflict",
    "CorruptObject",
    "DatumflowError",
    "Forbidden",
    "InvalidArgument",
    "MergeConflict",
    "NotFound",
    "ObjectNotFound",
    "PathNotFound",
    "ProtectedBranch",
    "RepoNotFound",
    "SchemaMismatch",
    "ServiceUnavailable",
    "TagNotFound",
    "Timeout",
    "Unauthenticated",
    "error_from_name",
]


class DatumflowError(Exception):
    """Root of every error datumflow raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(DatumflowError, ValueError):
    """A name, path, reference, spec or option is not acceptable."""


class NotFound(DatumflowError, FileNotFoundError):
    """The thing asked for does not exist."""

    def __init__(self, message: str) -> None:
        DatumflowError.__init__(self, message)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class RepoNotFound(NotFound):
    pass


class BranchNotFound(NotFound):
    pass


class CommitNotFound(NotFound):
    pass


class PathNotFound(NotFound):
    pass


class ObjectNotFound(NotFound):
    pass


class TagNotFound(NotFound):
    pass


class Forbidden(DatumflowError, PermissionError):
    """The caller is known but may not do this."""

    def __init__(self, message: str) -> None:
        DatumflowError.__init__(self, message)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class Unauthenticated(Forbidden):
    """No token, or a token the service does not know."""


class ProtectedBranch(Forbidden):
    """A direct write to a protected branch (merges only) or to a tag (never)."""


class Conflict(DatumflowError):
    """The request clashes with the current state."""


class AlreadyExists(Conflict, FileExistsError):
    def __init__(self, message: str) -> None:
        DatumflowError.__init__(self, message)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class CommitFinished(Conflict):
    pass


class CommitOpen(Conflict):
    pass


class BranchInUse(Conflict):
    pass


class ConcurrentUpdate(Conflict):
    pass


class MergeConflict(Conflict):
    """Both sides of a merge changed paths differently; the message names them (``dry_run`` lists them)."""


class CheckFailed(Conflict):
    """A merge check failed on the merge result, so the branch did not move."""


class CorruptObject(DatumflowError, OSError):
    """Stored bytes no longer match the hash they are addressed by."""

    def __init__(self, message: str) -> None:
        DatumflowError.__init__(self, message)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class Timeout(DatumflowError, TimeoutError):
    def __init__(self, message: str) -> None:
        DatumflowError.__init__(self, message)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class ServiceUnavailable(DatumflowError, ConnectionError):
    def __init__(self, message: str) -> None:
        DatumflowError.__init__(self, message)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class SchemaMismatch(DatumflowError):
    """The metadata database is at a schema revision this release cannot use (``datumflow db upgrade``)."""


HTTP_STATUS: dict[type[DatumflowError], int] = {
    InvalidArgument: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    CorruptObject: 500,
    ServiceUnavailable: 503,
    SchemaMismatch: 503,
    Timeout: 504,
    DatumflowError: 500,
}


def status_for(exc: DatumflowError) -> int:
    """The HTTP status of an error: the entry of its nearest listed ancestor."""
    for klass in type(exc).__mro__:
        if klass in HTTP_STATUS:
            return HTTP_STATUS[klass]
    return 500


def error_from_name(name: str, message: str) -> DatumflowError:
    """Rebuild an error from the class name the service sent (client side)."""
    klass = _by_name().get(name, DatumflowError)
    for base in klass.__mro__:  # a class built from more than a message: its nearest ancestor that is not
        if isinstance(base, type) and issubclass(base, DatumflowError):
            try:
                return base(message)
            except TypeError:
                continue
    return DatumflowError(message)


def _by_name() -> dict[str, type[DatumflowError]]:
    """Every subclass of :class:`DatumflowError` by name, found when asked.

    Walking the class tree at lookup time means an error defined in any
    module (``PipelineNotFound``, ``SpoutNotFound``…) is known as soon as
    that module is imported, with no list to keep in step. The client
    imports the modules that define errors (see ``client._ERROR_MODULES``).
    """
    found: dict[str, type[DatumflowError]] = {}
    stack: list[type[DatumflowError]] = [DatumflowError]
    while stack:
        klass = stack.pop()
        found.setdefault(klass.__name__, klass)
        stack.extend(klass.__subclasses__())
    return found
