"""Run a rendered pod's containers as local processes: the stand-in for a cluster in these tests.

Images are ignored (``datumflow`` comes from this virtualenv, ``sh`` from the
host). Every volume becomes a folder under ``workdir``; each mount path is
rewritten to its folder in commands, arguments, env values and working
folders. Env comes from ``env``/``valueFrom.secretKeyRef``/``envFrom`` like a
kubelet would build it, with ``secrets`` standing in for Kubernetes Secrets.
Init containers run one after another; then every container runs at once
(the uploader waits for the user's container through ``/pfs/.exit``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datumflow.storage_service.pipelines.executors.kubernetes import PodResult

BIN = str(Path(sys.executable).parent)


class PodSim:
    def __init__(self, workdir: Path, secrets: Mapping[str, Mapping[str, str]], *, timeout: float = 60) -> None:
        self.workdir = workdir
        self.secrets = secrets
        self.timeout = timeout
        self.pods: list[dict[str, Any]] = []  # every pod run, in order

    def __call__(self, pod: dict[str, Any]) -> PodResult:
        self.pods.append(pod)
        root = self.workdir / f"pod-{len(self.pods)}"
        volumes = {v["name"]: self._volume(root, v) for v in pod["spec"].get("volumes", [])}
        logs: dict[str, str] = {}
        codes: dict[str, int | None] = {}
        for c in pod["spec"].get("initContainers", []):
            proc = self._start(c, volumes, root)
            codes[c["name"]], logs[c["name"]] = _finish(proc, self.timeout)
            if codes[c["name"]] != 0:
                return PodResult("Failed", logs[c["name"]], codes)
        procs = {c["name"]: self._start(c, volumes, root) for c in pod["spec"]["containers"]}
        for name, proc in procs.items():
            codes[name], logs[name] = _finish(proc, self.timeout)
        phase = "Succeeded" if all(codes[n] == 0 for n in procs) else "Failed"
        return PodResult(phase, "\n".join(f"--- {n} ---\n{t}" for n, t in logs.items()), codes)

    def _volume(self, root: Path, volume: dict[str, Any]) -> Path:
        folder = root / "volumes" / volume["name"]
        folder.mkdir(parents=True)
        if "secret" in volume:
            for key, value in self.secrets[volume["secret"]["secretName"]].items():
                (folder / key).write_text(value)
        elif "emptyDir" not in volume:
            raise AssertionError(f"the simulation knows emptyDir and secret volumes, not {volume}")
        return folder

    def _start(self, c: dict[str, Any], volumes: dict[str, Path], root: Path) -> subprocess.Popen[bytes]:
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c.get("volumeMounts", [])}

        def local(text: str) -> str:
            for path, folder in mounts.items():
                text = re.sub(rf"(?<![\w./-]){re.escape(path)}(?=/|\b|$)", str(folder), text)
            return text

        env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(root)}
        for ref in c.get("envFrom", []):
            env.update(self.secrets[ref["secretRef"]["name"]])
        for item in c.get("env", []):
            if "valueFrom" in item:
                key = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.secrets[key["name"]][key["key"]]
            else:
                env[item["name"]] = local(item.get("value", ""))
        argv = [local(a) for a in [*c.get("command", []), *c.get("args", [])]]
        cwd = local(c["workingDir"]) if c.get("workingDir") else str(root)
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int | None, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out.decode(errors="replace") + "\n[simulation] killed after timeout"
    return proc.returncode, out.decode(errors="replace")


def environ_without_datumflow() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DATUMFLOW_")}
