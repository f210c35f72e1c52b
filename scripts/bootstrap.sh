# shellcheck shell=bash
# Sourced by scripts/run and scripts/test: finds Python >= 3.12, creates .venv and installs the
# pinned dependencies (requirements.lock) and the project, only when they changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null
}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.14 python3.13 python3.12 python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$(command -v "$candidate")"; then
            command -v "$candidate"
            return 0
        fi
    done
    local pyenv_root="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
    local newest_first
    newest_first=$(printf '%s\n' "$pyenv_root"/versions/3.1[2-9]*/bin/python3 | sort -rV)
    for candidate in $newest_first; do
        if [[ -x "$candidate" ]] && python_ok "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ ! -x "$VENV/bin/python" ]] || ! python_ok "$VENV/bin/python"; then
    if ! PYTHON_BIN="$(find_python)"; then
        echo "error: Python >= 3.12 is required and none was found on PATH or under pyenv." >&2
        echo "Install one (for example 'apt-get install python3.12 python3.12-venv' or 'pyenv install 3.12')," >&2
        echo "or point PYTHON at it, then run this again." >&2
        exit 1
    fi
    echo "[setup] creating .venv with $PYTHON_BIN ($("$PYTHON_BIN" --version))"
    rm -rf "$VENV"
    "$PYTHON_BIN" -m venv "$VENV"
fi

STAMP="$VENV/.installed"
WANT="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
    echo "[setup] installing pinned dependencies into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.lock"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
