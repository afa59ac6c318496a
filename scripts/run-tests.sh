#!/usr/bin/env bash
# Runs the whole test suite in its two environments:
#   .venv-kfp  tests/kfp (kfp pins a kubernetes client Airflow cannot use)
#   .venv      every test but tests/kfp (Airflow, S3, Kafka, PostgreSQL, ...)
# Extra arguments go to both pytest runs. Both parts always run; the exit
# status is non-zero when either failed. For the kfp part alone, "no tests
# collected" (pytest exit 5) counts as success.
# The main suite runs on DATUMFLOW_TEST_WORKERS pytest-xdist workers (default
# 2; 0 runs it in this process), a test file per worker at a time (its module
# fixtures stay shared): most tests wait on servers and subprocesses, so two
# workers on two cores halve the wall time. Extra arguments come after, so
# `make test PYTEST_ARGS="-n 0"` overrides it.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

kfp_status=0
if [ -d tests/kfp ]; then
    log "pytest (kfp environment)"
    .venv-kfp/bin/python -m pytest tests/kfp "$@"
    kfp_status=$?
    if [ "$kfp_status" -eq 5 ]; then
        log "no kfp tests collected"
        kfp_status=0
    fi
else
    log "no tests/kfp folder: nothing to run in .venv-kfp"
fi

# The main suite runs last so that its summary closes the output.
log "pytest (main environment)"
.venv/bin/python -m pytest tests --ignore=tests/kfp -n "${DATUMFLOW_TEST_WORKERS:-2}" --dist loadfile "$@"
main_status=$?

if [ "$main_status" -ne 0 ] || [ "$kfp_status" -ne 0 ]; then
    log "FAILED: main suite exit $main_status, kfp suite exit $kfp_status"
    exit 1
fi
