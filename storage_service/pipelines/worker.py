"""The worker: one datum, in three steps that also run apart.

``fetch`` writes the datum's input files to ``<pfs>/<input name>/<path>``
and makes an empty ``<pfs>/out``; ``run_transform`` runs the user's command
(on this host; in a pod the container is the image) with the Pachyderm
environment; ``upload`` stores what the command left in ``<pfs>/out`` and
returns the file entries. The local executor calls them in-process; a
Kubernetes pod calls ``datumflow worker fetch`` in its init container and
``datumflow worker upload`` after the user's container.

Commands written for Pachyderm name ``/pfs/...``: on this host the command
runs in the datum's own filesystem view (:mod:`.sandbox`), where the datum's
folder *is* ``/pfs``. Only with the explicit ``DATUMFLOW_SANDBOX=none``
fallback does it run on the host, with ``/pfs`` in ``cmd``, ``stdin`` and
``working_dir`` rewritten to the folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines.datums import Datum
from datumflow.storage_service.pipelines.sandbox import Sandbox, SandboxUnavailable
from datumflow.storage_service.pipelines.spec import PfsInput, PipelineSpec, Transform
from datumflow.storage_service.store.files import entry_of

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = [
    "DatumEnv", "RunResult", "datum_env", "fetch", "run_transform", "snapshot", "upload", "write_env_file",
    "written_outside",
]

LOG_LIMIT = 64 * 1024
SECRETS_ENV = "DATUMFLOW_SECRETS"  # a folder of <secret name>/<key> files
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PFS_WORD = re.compile(r"(?<![\w./-])/pfs(?=/|\b|$)")


@dataclass(frozen=True)
class DatumEnv:
    """What a datum's process is told about itself (Pachyderm's variables, and datumflow's names for them)."""

    job_id: str
    datum: Datum
    output_commit: str = ""
    pipeline: str = ""
    empty_inputs: frozenset[str] = frozenset()  # inputs with empty_files: names only, no content

    def variables(self, pfs: Path) -> dict[str, str]:
        env = {
            "PACH_JOB_ID": self.job_id, "DATUMFLOW_JOB_ID": self.job_id,
            "PACH_DATUM_ID": self.datum.id, "DATUMFLOW_DATUM_ID": self.datum.id,
            "PACH_OUTPUT_COMMIT_ID": self.output_commit, "DATUMFLOW_PFS": str(pfs),
        }
        if self.pipeline:
            env["PPS_PIPELINE_NAME"] = self.pipeline
        for inp in self.datum.inputs:
            # Input names go in as given, hyphens included (as Pachyderm's worker sets them).
            env[inp.name] = str(pfs / inp.name / inp.path) if inp.path else str(pfs / inp.name)
            env[f"{inp.name}_COMMIT"] = inp.commit
            if inp.join_on:
                env[f"PACH_DATUM_{inp.name}_JOIN_ON"] = inp.join_on
            if inp.group_by:
                env[f"PACH_DATUM_{inp.name}_GROUP_BY"] = inp.group_by
        return env


def datum_env(spec: PipelineSpec, job_id: str, datum: Datum, output_commit: str = "") -> DatumEnv:
    """What one datum of ``spec`` is told about itself."""
    empty = frozenset(x.name for x in spec.leaves() if isinstance(x, PfsInput) and x.empty_files)
    return DatumEnv(job_id, datum, output_commit, spec.name, empty)


def write_env_file(env: DatumEnv, pfs: Path) -> Path:
    """``<pfs>.env``: the datum's variables as ``export NAME='value'`` lines, for a pod's POSIX sh wrapper.

    Names a shell cannot export (a hyphenated input name: ``my-images``, ``my-images_COMMIT``) go
    to ``<pfs>.envargs`` instead, one ``NAME=value`` per line: the wrapper hands them to ``env``,
    which puts them in the transform's environment as Pachyderm's worker does. Paths under
    ``/pfs`` are written under ``$DATUMFLOW_PFS``, the volume's mount point the pod spec gives
    (in ``.envargs``: lines marked ``p`` hold the part after ``/pfs``, ``v`` a value as it is).
    """
    lines, args = [], []
    for key, value in env.variables(Path("/pfs")).items():
        if key == "DATUMFLOW_PFS":
            continue  # the pod spec sets DATUMFLOW_PFS, where the volume is mounted
        if not _SHELL_NAME.fullmatch(key):
            if "\n" in value or "=" in key:
                raise InvalidArgument(f"variable {key!r} cannot be passed to a pod's transform")
            under = value == "/pfs" or value.startswith("/pfs/")
            args.append(f"p{key}={value[len('/pfs'):]}\n" if under else f"v{key}={value}\n")
            continue
        quoted = "'" + value.replace("'", "'\\''") + "'"
        if value == "/pfs" or value.startswith("/pfs/"):  # under the volume, wherever it is mounted
            quoted = '"$DATUMFLOW_PFS"' + quoted.replace("'/pfs", "'", 1)
        lines.append(f"export {key}={quoted}\n")
    target = pfs.with_name(pfs.name + ".env")
    target.write_text("".join(lines))
    extra = pfs.with_name(pfs.name + ".envargs")
    if args:
        extra.write_text("".join(args))
    else:
        extra.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class RunResult:
    ok: bool
    exit_code: int | None
    log: str
    error: str | None = None


def fetch(store: Store, datum: Datum, pfs: Path, *, empty: frozenset[str] = frozenset()) -> None:
    """Write the datum's inputs under ``pfs`` and create an empty ``pfs/out``.

    Inputs named in ``empty`` (``empty_files: true``) get their files' names with no content.
    """
    for inp in datum.inputs:
        base = pfs / inp.name
        base.mkdir(parents=True, exist_ok=True)
        for f in inp.files:
            dest = base / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as out:
                if inp.name in empty:
                    continue
                for block in store.open_file(inp.repo, inp.commit, f.path):
                    out.write(block)
    (pfs / "out").mkdir(parents=True, exist_ok=True)


def run_transform(
    transform: Transform, env: DatumEnv, pfs: Path, *, timeout: float | None = None,
    secrets: Mapping[str, str] = {}, sandbox: Sandbox | None = None,
) -> RunResult:
    """Run the command with stdin; kill its whole process group after ``timeout`` seconds.

    With a ``sandbox`` that isolates, the command sees ``pfs`` as ``/pfs`` and nothing of this
    host's files or environment beyond the sandbox's; without one it runs here (``/pfs`` rewritten).
    """
    pfs = pfs.resolve()
    if sandbox is not None and sandbox.isolated:
        sandbox.check()
        mounts = secret_mounts(transform)
        inside = {**transform.env, **secrets, **env.variables(Path("/pfs"))}
        inputs = [i.name for i in env.datum.inputs]
        cmd = sandbox.argv(transform.cmd, pfs, inputs, env=inside, working_dir=transform.working_dir, mounts=mounts)
        stdin = "".join(line + "\n" for line in transform.stdin)
        cwd, variables = str(pfs), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    else:
        if sandbox is not None:
            sandbox.check()
        cmd = [_rebase(arg, pfs) for arg in transform.cmd]
        stdin = "".join(_rebase(line, pfs) + "\n" for line in transform.stdin)
        cwd = _rebase(transform.working_dir, pfs) if transform.working_dir else str(pfs)
        variables = {**os.environ, **transform.env, **secrets, **env.variables(pfs)}
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=variables,
                start_new_session=True,
            )
        except OSError as exc:
            return RunResult(False, None, "", f"cannot start {cmd[0]!r}: {exc.strerror or exc}")
        error = _communicate(proc, stdin, timeout)
        log.seek(0)
        text = _tail(log.read())
    code = proc.returncode
    if error is None and code != 0 and code not in transform.accept_return_code:
        error = f"exited with status {code}"
    return RunResult(error is None, code, text, error)


def _communicate(proc: subprocess.Popen[bytes], stdin: str, timeout: float | None) -> str | None:
    try:
        proc.communicate(stdin.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return f"timed out after {timeout:g}s (datum_timeout); the process group was killed"
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        _kill_group(proc, only_leftovers=True)
    return None


def _kill_group(proc: subprocess.Popen[bytes], *, only_leftovers: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if not only_leftovers:
        proc.wait()


def snapshot(pfs: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of everything under ``pfs`` except ``out``: to catch writes to inputs."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(pfs):
        if Path(dirpath) == pfs:
            dirnames[:] = [d for d in dirnames if d != "out"]
            filenames = [f for f in filenames if f != "out"]
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.relpath(os.path.join(dirpath, name), pfs)] = (st.st_size, st.st_mtime_ns)
    return found


def written_outside(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    changed = [p for p in after if before.get(p) != after[p]]
    return sorted(changed + [p for p in before if p not in after])


def upload(store: Store, pfs: Path, datum: Datum | None = None) -> dict[str, list[Any]]:
    """Store the files under ``pfs/out``; {path: file entry}. Links may point inside ``pfs`` only.

    A link to one of the ``datum``'s input files takes that file's stored entry as it is, as
    Pachyderm's worker does: nothing is read or written (the shuffle pattern), and with
    ``empty_files`` the output still has the input's full content.
    """
    pfs = pfs.resolve()
    out = pfs / "out"
    if out.is_symlink() or not out.is_dir():
        raise InvalidArgument(f"{out} must be a folder the transform writes into")
    linked = _input_files(datum)
    entries: dict[str, list[Any]] = {}
    with store.chunks.writer() as writer:
        for rel, local in _output_files(pfs, out):
            source = linked.get(local.relative_to(pfs).as_posix()) if local.is_relative_to(pfs) else None
            info = store.inspect_file(*source) if source is not None else None
            if info is not None and info.hash is not None:
                entries[rel] = entry_of(info.size, info.hash, info.chunks)
                continue
            h, refs, size = writer.add_file(str(local))
            entries[rel] = entry_of(size, h, refs)
    return entries


def _input_files(datum: Datum | None) -> dict[str, tuple[str, str, str]]:
    """{"<input name>/<path>": (repo, commit, path)} of every input file of the datum."""
    found: dict[str, tuple[str, str, str]] = {}
    for inp in datum.inputs if datum is not None else ():
        for f in inp.files:
            found[f"{inp.name}/{f.path}"] = (inp.repo, inp.commit, f.path)
    return found


def _output_files(pfs: Path, out: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    stack: list[tuple[str, Path]] = [("", out)]
    while stack:
        prefix, folder = stack.pop()
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            target = Path(entry.path)
            if entry.is_symlink():
                target = _link_target(target, pfs)
                if not target.is_relative_to(pfs) or target == pfs:
                    raise InvalidArgument(f"output out/{rel} is a link to {target}, outside the datum's /pfs")
            mode = os.stat(target).st_mode if target.exists() else 0
            if stat.S_ISDIR(mode):
                stack.append((rel, target))
            elif stat.S_ISREG(mode):
                found.append((rel, target))
            else:
                raise InvalidArgument(f"output out/{rel} is not a regular file or folder")
    return sorted(found)


def _link_target(link: Path, pfs: Path, hops: int = 40) -> Path:
    """Where a link made in the datum's view leads on this host: ``/pfs/...`` there is ``pfs`` here."""
    path = link
    for _ in range(hops):
        if not path.is_symlink():
            return Path(os.path.realpath(path))
        raw = os.readlink(path)
        if raw == "/pfs" or raw.startswith("/pfs/"):
            path = pfs / raw[len("/pfs/"):] if raw != "/pfs" else pfs
        else:
            path = Path(os.path.normpath(path.parent / raw))
    raise InvalidArgument(f"output {link.name} is a chain of more than {hops} links")


def clear(pfs: Path) -> None:
    if pfs.exists():
        shutil.rmtree(pfs)
    pfs.mkdir(parents=True)


def _rebase(text: str, pfs: Path) -> str:
    if str(pfs) == "/pfs":
        return text
    return _PFS_WORD.sub(str(pfs).replace("\\", "\\\\"), text)


def _tail(data: bytes) -> str:
    if len(data) > LOG_LIMIT:
        data = b"[... earlier output dropped ...]\n" + data[-LOG_LIMIT:]
    return data.decode("utf-8", "replace")


@dataclass(frozen=True)
class DatumOutcome:
    """The end of one datum after all its tries."""

    ok: bool
    outputs: dict[str, list[Any]]
    log: str
    error: str | None
    tries: int
    started: float
    finished: float


def run_datum(
    store: Store, transform: Transform, env: DatumEnv, pfs: Path, *,
    tries: int = 1, timeout: float | None = None, sandbox: Sandbox | None = None,
) -> DatumOutcome:
    """Fetch, run and upload one datum, up to ``tries`` times; ``pfs`` is emptied first each time."""
    import time

    started = time.time()
    logs: list[str] = []
    error: str | None = None
    for attempt in range(1, tries + 1):
        clear(pfs)
        fetch(store, env.datum, pfs, empty=env.empty_inputs)
        before = snapshot(pfs)
        try:
            secrets = secret_env(transform)
            result = run_transform(transform, env, pfs, timeout=timeout, secrets=secrets, sandbox=sandbox)
        except SandboxUnavailable as exc:
            return DatumOutcome(False, {}, "", str(exc), attempt, started, time.time())
        logs.append(result.log if tries == 1 else f"--- try {attempt}/{tries} ---\n{result.log}")
        error = result.error
        if error is None:
            outside = written_outside(before, snapshot(pfs))
            if outside:
                error = "wrote outside /pfs/out: " + ", ".join(outside[:5])
        if error is None:
            try:
                outputs = upload(store, pfs, env.datum)
            except InvalidArgument as exc:
                error = str(exc)
            else:
                return DatumOutcome(True, outputs, _tail("".join(logs).encode()), None, attempt, started, time.time())
        if error:
            logs.append(f"[datumflow] {error}\n")
    return DatumOutcome(False, {}, _tail("".join(logs).encode()), error, tries, started, time.time())


def secret_env(transform: Transform) -> dict[str, str]:
    """Secrets with ``env_var``: the key's file under ``$DATUMFLOW_SECRETS/<name>/``, else this host's variable."""
    out = {}
    for s in transform.secrets:
        if not s.env_var:
            continue
        stored = _secret_dir(s.name) / (s.key or "") if s.key and os.environ.get(SECRETS_ENV) else None
        if stored is not None and stored.is_file():
            out[s.env_var] = stored.read_text().rstrip("\n")
        elif s.env_var in os.environ:
            out[s.env_var] = os.environ[s.env_var]
    return out


def secret_mounts(transform: Transform) -> dict[str, Path]:
    """{mount_path: host folder} of secrets with ``mount_path``: ``$DATUMFLOW_SECRETS/<name>``, one file per key."""
    mounts: dict[str, Path] = {}
    for s in transform.secrets:
        if s.mount_path is None:
            continue
        if not os.environ.get(SECRETS_ENV):
            raise SandboxUnavailable(
                f"secret {s.name} has mount_path {s.mount_path}: set {SECRETS_ENV} to a folder holding "
                f"{s.name}/<key> files (as Kubernetes mounts a secret)"
            )
        folder = _secret_dir(s.name)
        if not folder.is_dir():
            raise SandboxUnavailable(f"secret {s.name} not found: {folder} is not a folder")
        mounts[s.mount_path] = folder
    return mounts


def _secret_dir(name: str) -> Path:
    return Path(os.environ[SECRETS_ENV]) / name
