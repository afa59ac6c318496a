# Shared helpers for the setup scripts; source it, do not run it.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root, through sudo when we are not root already.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Prints the command that runs uv, installing uv with pip when it is missing.
uv_cmd() {
    if command -v uv >/dev/null 2>&1; then
        echo uv
        return
    fi
    if ! python3 -m uv --version >/dev/null 2>&1; then
        log "installing uv with pip"
        python3 -m pip install -q uv >&2 || die "could not pip-install uv"
    fi
    echo "python3 -m uv"
}

# Holds an exclusive lock named $1 until the calling script exits, so that
# two `make` runs in the same work tree never build the same thing at once.
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    local key
    key=$(printf '%s' "$PWD" | md5sum | cut -c1-12)
    exec 9>"${TMPDIR:-/tmp}/datumflow-${key}-$1.lock"
    flock 9
}
