#!/usr/bin/env bash
# Makes sure the machine services the tests talk to are there:
# PostgreSQL on 127.0.0.1:5432 (started when stopped), Debian's headless
# Chromium (installed when /usr/bin/chromium is missing) and bubblewrap
# (bwrap: the datum sandbox of the local executor). Fast when all are
# already in place. The S3 and Kafka servers are started by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

start_postgres() {
    pg_isready -q -h 127.0.0.1 -p 5432 && return
    command -v pg_ctlcluster >/dev/null 2>&1 || die "PostgreSQL is not installed (no pg_ctlcluster)"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return
        sleep 1
    done
    die "PostgreSQL did not accept connections on 127.0.0.1:5432 within 30 s"
}

install_chromium() {
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return
    take_lock apt
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return
    log "installing Debian's chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -qq -o DPkg::Lock::Timeout=300 update
    as_root apt-get -qq -o DPkg::Lock::Timeout=300 install -y \
        chromium chromium-driver >/dev/null
    [ -x /usr/bin/chromium ] || die "apt-get installed chromium, yet /usr/bin/chromium is missing"
}

install_bwrap() {
    command -v bwrap >/dev/null 2>&1 && return
    take_lock apt
    command -v bwrap >/dev/null 2>&1 && return
    log "installing Debian's bubblewrap (bwrap: datums run in their own filesystem view)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -qq -o DPkg::Lock::Timeout=300 update
    as_root apt-get -qq -o DPkg::Lock::Timeout=300 install -y bubblewrap >/dev/null
    command -v bwrap >/dev/null 2>&1 || die "apt-get installed bubblewrap, yet bwrap is not on PATH"
}

case "${1:-all}" in
    postgres) start_postgres ;;
    chromium) install_chromium ;;
    bwrap) install_bwrap ;;
    all) start_postgres; install_chromium; install_bwrap ;;
    *) die "usage: $0 [postgres|chromium|bwrap|all]" ;;
esac
