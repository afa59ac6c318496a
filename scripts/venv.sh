#!/usr/bin/env bash
# Builds (or updates) one virtual environment from its lock and touches its
# stamp file.
#
#   scripts/venv.sh DIR LOCK [PACKAGE...]
#
# The environment is created only when missing; `uv pip sync` then makes it
# hold exactly the pins of LOCK (a file of requirements/, see
# scripts/lock.sh), adding, changing and removing only what differs. The
# PACKAGEs (the project, `-e .`) are installed on top without dependencies:
# the lock has them all, and `uv pip check` fails when it does not, e.g. when
# pyproject.toml gained a dependency and `make lock` was not run.
# PYTHON picks the interpreter (default python3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

[ $# -ge 2 ] || die "usage: $0 DIR LOCK [PACKAGE...]"
dir=$1
lock=$2
shift 2
[ -f "$lock" ] || die "no lock file $lock (make lock writes it)"

take_lock "venv-$(basename "$dir")"
uv=$(uv_cmd)
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
# Only this machine's interpreters: downloading one is not possible here.
export UV_PYTHON_DOWNLOADS=never

if [ ! -x "$dir/bin/python" ]; then
    log "creating $dir with $python"
    $uv venv -q --python "$(command -v "$python")" "$dir"
fi
# --compile-bytecode: every module compiled at install, as pip does. uv leaves that to the first
# import by default, and where PYTHONDONTWRITEBYTECODE is set nothing is ever cached: each start of
# the CLI, a test's subprocess or a service compiled SQLAlchemy again (half a second here).
log "syncing $dir with $lock"
$uv pip sync -q --compile-bytecode --python "$dir/bin/python" "$lock"
if [ $# -gt 0 ]; then
    log "installing into $dir without dependencies: $*"
    $uv pip install -q --compile-bytecode --python "$dir/bin/python" --no-deps "$@"
fi
$uv pip check -q --python "$dir/bin/python" \
    || die "$dir has missing or conflicting packages; after a pyproject.toml change, run 'make lock'"
touch "$dir/.stamp"
