"""Runs ``datumflow`` commands in forked child processes, imports paid once.

Starting Python and importing the store takes over a second here; forking a
process that already imported it takes milliseconds. Each command still runs
in its own process, with its own cwd, environment, stdin/stdout/stderr files
and exit status — the same ``main`` the ``datumflow`` script calls.

Protocol: one JSON request per line on stdin
(``{"argv", "cwd", "env", "stdin", "stdout", "stderr"}``, the last three file
paths); one JSON reply per line on stdout (``{"rc": status}``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from datumflow.storage_service.cli.main import build_parser, main


def _child(request: dict) -> int:
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, name, mode in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY), (2, "stderr", os.O_WRONLY)):
        target = os.open(request[name], mode)
        os.dup2(target, fd)
        os.close(target)
    try:
        return main(request["argv"])
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # what the interpreter would do with an uncaught error
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def serve() -> None:
    build_parser()  # import every verb module before forking
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request))
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        sys.stdout.write(json.dumps({"rc": rc}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
