# Sourced by scripts/up and scripts/test: make .venv (Python >= 3.11) and install ketch into it.
# $1: the pip extra to install ("" or "test").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${KETCH_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "ketch needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi
spec="$ROOT"
[ -n "${1:-}" ] && spec="$ROOT[$1]"
# heartbeat CMD...: run CMD, printing how long it has been running every 15 s, so a long
# silent step (a fresh install, the test suite) shows it is alive.
heartbeat() {
    local what=$1 start=$SECONDS pid rc
    shift
    "$@" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if kill -0 "$pid" 2>/dev/null && (( (SECONDS - start) % 15 == 0 )); then
            echo "    ... $what: $((SECONDS - start)) s" >&2
        fi
    done
    wait "$pid" && rc=0 || rc=$?
    return $rc
}
echo "==> installing ketch${1:+[$1]} into $VENV (a few minutes on a fresh clone)"
heartbeat "installing" "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
