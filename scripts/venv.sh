#!/usr/bin/env bash
# Builds (or updates) one virtual environment and touches its stamp file.
#
#   scripts/venv.sh DIR PACKAGE...
#
# The environment is created only when missing; the packages are then
# installed with uv, so an update after a pyproject.toml change is
# incremental. PYTHON picks the interpreter (default python3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

[ $# -ge 2 ] || die "usage: $0 DIR PACKAGE..."
dir=$1
shift

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
log "installing into $dir: $*"
$uv pip install -q --python "$dir/bin/python" "$@"
touch "$dir/.stamp"
