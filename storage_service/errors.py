"""The one exception tree of datumflow.

Every error raised on purpose by datumflow derives from :class:`DatumflowError`.
The HTTP layer maps each class to a status code in one place
(:data:`HTTP_STATUS`), and the client maps the code and the class name back,
so a caller catches the same class whether the store is embedded or remote::

    DatumflowError
    ├── InvalidArgument (ValueError)         400  bad name, path, ref, spec, option
    │   └── MissingSecret                    a KFP component's environment lacks the service address
    ├── NotFound (FileNotFoundError)         404
    │   ├── RepoNotFound
    │   ├── BranchNotFound
    │   ├── CommitNotFound
    │   ├── PathNotFound
    │   ├── TagNotFound
    │   ├── ObjectNotFound                   a chunk or index node is missing
    │   ├── PipelineNotFound
    │   ├── JobNotFound                      no job (or no datum of a job) has that id
    │   ├── SpoutNotFound
    │   └── TopicNotFound                    the Kafka topic does not exist (a spout never creates it)
    ├── Forbidden (PermissionError)          403  authenticated, but not allowed
    │   ├── Unauthenticated                  401  no or unknown token
    │   └── ProtectedBranch                  a direct write to a protected branch or a tag
    │       └── OutputBranch                 a write to a pipeline's output branch (or its job's open
    │                                        output commit) from anyone but the pipeline's job
    ├── Conflict                             409
    │   ├── AlreadyExists (FileExistsError)
    │   ├── CommitFinished                   writing into a finished commit
    │   ├── CommitOpen                       the operation needs a finished commit
    │   ├── BranchInUse                      other branches are provenant on it
    │   ├── ConcurrentUpdate                 a compare-and-swap kept losing
    │   ├── MergeConflict                    both sides changed a path differently
    │   ├── CheckFailed                      a merge check refused the merge result
    │   ├── JobLost                          another job loop took the job over (a claim lapsed)
    │   └── CorruptOffsets                   a commit's Kafka offsets cannot be read
    ├── CorruptObject (OSError)              500  stored bytes do not match their hash
    ├── Timeout (TimeoutError)               504  waiting for a commit or job
    ├── ServiceUnavailable (ConnectionError) 503  the service cannot be reached
    ├── SchemaMismatch                       503  the database needs 'datumflow db upgrade'
    ├── SandboxUnavailable                   500  the datum sandbox cannot be made on this host
    └── S3Error                              its own status: an S3 error code (the S3 gateway's
                                             table in service/s3/errors.py maps the others to codes)

All of them pickle (triggers and executors send them across processes): each
keeps its message as its only argument, except ``S3Error``, which also keeps its
code, status and resource. Every class is defined here, so the client rebuilds
any of them from the name the service sends, importing nothing else.
"""

from __future__ import annotations

__all__ = [
    "CONCURRENT_WRITE",
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
    "CorruptOffsets",
    "DatumflowError",
    "Forbidden",
    "InvalidArgument",
    "JobLost",
    "JobNotFound",
    "MergeConflict",
    "MissingSecret",
    "NotFound",
    "ObjectNotFound",
    "OutputBranch",
    "PathNotFound",
    "PipelineNotFound",
    "ProtectedBranch",
    "RepoNotFound",
    "S3Error",
    "SandboxUnavailable",
    "SchemaMismatch",
    "ServiceUnavailable",
    "SpoutNotFound",
    "TagNotFound",
    "Timeout",
    "TopicNotFound",
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


class MissingSecret(InvalidArgument):
    """The component's environment does not say where the datumflow service is."""


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


class PipelineNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    """No job (or no datum of a job) has that id."""


class SpoutNotFound(NotFound):
    pass


class TopicNotFound(NotFound):
    """The topic does not exist on the brokers (the spout never creates it)."""


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


class OutputBranch(ProtectedBranch):
    """A pipeline's output branch is written by its jobs alone (and by its spout); an owner repairs with force."""


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


class JobLost(Conflict):
    """Another job loop took the job over while this one worked on it (its claim had lapsed)."""


class MergeConflict(Conflict):
    """Both sides of a merge changed paths differently; the message names them (``dry_run`` lists them)."""


class CheckFailed(Conflict):
    """A merge check failed on the merge result, so the branch did not move."""


class CorruptOffsets(Conflict):
    """A commit's Kafka metadata cannot be read; the spout refuses to guess."""


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


class SandboxUnavailable(DatumflowError):
    """The datum sandbox cannot be made on this host (bwrap is missing or refused)."""


class S3Error(DatumflowError):
    """An S3 error code with its HTTP status; ``resource`` names the bucket or key."""

    def __init__(self, code: str, message: str, status: int = 400, resource: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.resource = resource

    def __reduce__(self) -> tuple[type, tuple[str, str, int, str]]:
        return (type(self), (self.code, self.message, self.status, self.resource))


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


# What a caller hears when a concurrent request wrote the same unique record first and no retry
# settled it (409: ConcurrentUpdate, or S3's OperationAborted).
CONCURRENT_WRITE = "a concurrent request wrote the same record at the same moment; try again"


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

    Every class is defined in this module (a test checks that no other
    module defines one), so walking the tree needs no other import.
    """
    found: dict[str, type[DatumflowError]] = {}
    stack: list[type[DatumflowError]] = [DatumflowError]
    while stack:
        klass = stack.pop()
        found.setdefault(klass.__name__, klass)
        stack.extend(klass.__subclasses__())
    return found
