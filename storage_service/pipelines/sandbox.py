"""The datum's own filesystem view on this host: Pachyderm's container contract without a container.

With ``bwrap`` (Debian's ``bubblewrap``) a datum's command runs in new user,
mount, PID, IPC and UTS namespaces, as uid/gid 65534 (nobody), and sees:

- ``/pfs/<input>`` read-only and ``/pfs/out`` writable: the real paths, so
  scripts that read ``/pfs/images/...`` literally just work;
- a private, empty ``/tmp`` (and ``HOME=/tmp``);
- the host's ``/usr``, ``/etc``, ``/bin``, ``/lib*``, ``/sbin``, ``/opt``
  read-only, standing in for the image; ``/proc`` and a minimal ``/dev``;
- this service's Python and the datumflow packages, read-only (the worker
  image has both: a transform such as ``python3 -m datumflow.kfp_components.datum_fn``
  runs the same in a pod and here); ``python3`` on ``PATH`` is that Python;
- secrets with ``mount_path`` as files in that folder; folders an operator
  lists in ``DATUMFLOW_SANDBOX_BINDS`` (``:``-separated, read-only: where
  transform code lives);
- only the environment the spec gives (``transform.env``, secrets with
  ``env_var``, Pachyderm's ``PACH_*`` variables): never the service's.

Nothing else of the host — the store's root, its database, the service's
environment, other datums' folders — exists in that view.

Where bwrap is missing, running a datum fails with :class:`SandboxUnavailable`
naming the fix. ``DATUMFLOW_SANDBOX=none`` opts into the old behaviour: the
command runs on the host with ``/pfs`` rewritten to the datum's folder in
``cmd``, ``stdin`` and ``working_dir`` (not inside scripts) and the service's
environment inherited — a warning is logged once, as it isolates nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datumflow.storage_service.errors import SandboxUnavailable

__all__ = ["BINDS_ENV", "MODE_ENV", "Sandbox", "SandboxUnavailable", "sandbox_from_env"]

MODE_ENV = "DATUMFLOW_SANDBOX"  # "bwrap" (the default) or "none"
BINDS_ENV = "DATUMFLOW_SANDBOX_BINDS"
NOBODY = 65534
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
_log = logging.getLogger(__name__)
_warned: list[bool] = []


@dataclass(frozen=True)
class Sandbox:
    """How datums run here: in a bwrap view (``isolated``), or on the host with ``/pfs`` rewritten."""

    isolated: bool = True
    bwrap: str = "bwrap"
    binds: tuple[str, ...] = ()  # extra read-only host folders (transform code)
    hidden: tuple[str, ...] = field(default=())  # host paths that must never be bound (the store root)

    def check(self) -> None:
        if self.isolated and shutil.which(self.bwrap) is None:
            raise SandboxUnavailable(
                "datums run in their own filesystem view through bwrap, which is not installed "
                "(Debian/Ubuntu: apt-get install bubblewrap); or set DATUMFLOW_SANDBOX=none to run "
                "them on this host without isolation"
            )
        if not self.isolated and not _warned:
            _warned.append(True)
            _log.warning(
                "DATUMFLOW_SANDBOX=none: datums run on this host, see the service's files and environment, "
                "and /pfs is rewritten only in cmd, stdin and working_dir"
            )
        for bind in self.binds:
            for secret in self.hidden:
                if _overlaps(bind, secret):
                    raise SandboxUnavailable(f"{BINDS_ENV} entry {bind} would show {secret} to datums")

    def argv(
        self, cmd: Sequence[str], pfs: Path, inputs: Sequence[str], *, env: Mapping[str, str],
        working_dir: str | None, mounts: Mapping[str, Path] = {},
    ) -> list[str]:
        """The bwrap command line running ``cmd`` in the view of the datum whose host folder is ``pfs``."""
        args = [
            self.bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--uid", str(NOBODY), "--gid", str(NOBODY), "--die-with-parent", "--new-session",
            "--hostname", "datum",
        ]
        for path in _SYSTEM:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/pfs"]
        for name in dict.fromkeys(inputs):
            args += ["--ro-bind", str(pfs / name), f"/pfs/{name}"]
        args += ["--bind", str(pfs / "out"), "/pfs/out"]
        for target, source in mounts.items():
            args += ["--ro-bind", str(source), target]
        for bind in (*_runtime_paths(), *self.binds):
            args += ["--ro-bind-try", bind, bind]
        cwd = working_dir or "/pfs"
        if not cwd.startswith("/pfs") and not any(_overlaps(cwd, b) for b in (*_SYSTEM, *self.binds)):
            args += ["--dir", cwd]  # a working_dir the "image" lacks: an empty folder, as a container runtime makes
        args += ["--chdir", cwd, "--clearenv"]
        for key, value in {"PATH": f"{sys.prefix}/bin:{PATH}", "HOME": "/tmp", **env}.items():
            args += ["--setenv", key, value]
        return [*args, "--", *cmd]


def sandbox_from_env(*, hidden: Sequence[str] = ()) -> Sandbox:
    """The sandbox the environment asks for (``DATUMFLOW_SANDBOX``, ``DATUMFLOW_SANDBOX_BINDS``)."""
    mode = os.environ.get(MODE_ENV, "bwrap").strip().lower()
    if mode not in ("bwrap", "none"):
        raise SandboxUnavailable(f"{MODE_ENV}={mode!r}: use bwrap (the default) or none")
    binds = tuple(os.path.abspath(b) for b in os.environ.get(BINDS_ENV, "").split(":") if b.strip())
    return Sandbox(isolated=mode == "bwrap", binds=binds, hidden=tuple(os.path.abspath(h) for h in hidden))


def _runtime_paths() -> list[str]:
    """This Python (its prefix and base install) and the folders of the datumflow packages, outside the
    system folders already shown: what the worker image would hold. Never a parent folder of them."""
    import importlib.util

    found = [sys.prefix, sys.base_prefix]
    for name in ("datumflow", *(f"datumflow.{m}" for m in _PACKAGES)):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            found.extend(spec.submodule_search_locations)
    real = dict.fromkeys(os.path.realpath(p) for p in found)
    return [p for p in real if not any(p == s or p.startswith(s + "/") for s in _SYSTEM)]


_PACKAGES = ("storage_service", "kfp_components", "plugin", "operators", "sensors")


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") or "/", b.rstrip("/") or "/"
    return a == b or a.startswith(b + "/") or b.startswith(a + "/") or "/" in (a, b)
