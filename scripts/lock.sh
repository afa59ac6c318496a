#!/usr/bin/env bash
# Resolves the pinned requirement files the environments install from:
#
#   scripts/lock.sh [--upgrade]        (make lock / make lock-upgrade)
#
#   requirements/main.txt   .venv        extras dev,s3,postgres,kafka,airflow + requirements/main.in
#   requirements/kfp.txt    .venv-kfp    extras kfp,dev + requirements/kfp.in (the kfp pin)
#   requirements/demo.txt   .venv-demo   the core dependencies only, at main.txt's versions
#   requirements/bench.txt  .venv-bench  requirements/bench.in
#   requirements/service.txt  the service image: extras postgres,s3,kubernetes at main.txt's versions
#
# The ranges come from pyproject.toml (what the published package asks
# for); each file pins one version of every package, for Python 3.11 on
# any platform (uv's universal resolution). Without --upgrade a pin that
# still fits the ranges is kept, so a new dependency changes only what it
# needs; --upgrade moves every pin to the newest release the ranges allow.
# The project itself is not in the files: scripts/venv.sh installs it
# editable on top, without dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

upgrade=
case "${1:-}" in
    --upgrade) upgrade=--upgrade ;;
    "") ;;
    *) die "usage: $0 [--upgrade]" ;;
esac

take_lock requirements
uv=$(uv_cmd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Resolves into a copy of the current file (uv keeps the pins it finds in
# its output file) and replaces the file only when something changed, so
# that an unchanged lock does not make the environments resync.
resolve() {
    local out=$1 new
    shift
    new="$tmp/$(basename "$out")"
    if [ -f "$out" ]; then cp "$out" "$new"; else : >"$new"; fi
    log "resolving $out${upgrade:+ (upgrade)}"
    # shellcheck disable=SC2086  # $upgrade is empty or one word
    $uv pip compile -q --universal --python-version 3.11 --custom-compile-command "make lock" \
        $upgrade -o "$new" "$@"
    if cmp -s "$new" "$out"; then
        log "$out unchanged"
    else
        mv "$new" "$out"
        log "$out updated"
    fi
}

resolve requirements/main.txt pyproject.toml requirements/main.in \
    --extra dev --extra s3 --extra postgres --extra kafka --extra airflow
resolve requirements/kfp.txt pyproject.toml requirements/kfp.in --extra kfp --extra dev
# The demo's pins are the main environment's, the versions the suite tests.
resolve requirements/demo.txt pyproject.toml --constraint requirements/main.txt
resolve requirements/bench.txt requirements/bench.in
# The service image (docker/service.Dockerfile): PostgreSQL, S3 and the Kubernetes executor, pinned as tested.
resolve requirements/service.txt pyproject.toml --extra postgres --extra s3 --extra kubernetes --constraint requirements/main.txt
