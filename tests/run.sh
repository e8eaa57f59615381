#!/usr/bin/env bash
# Run every check and test of modeld from a clean checkout: this is the README's
# test command, and all that .ci/run does. Installs the test requirements into
# a private virtual environment (.venv) first, so it needs only python3 >= 3.9.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# The systemd exports are checked with systemd-analyze verify: CI installs it when missing
# (elsewhere those tests skip and say so).
if [ "${CI:-}" = "true" ] && ! command -v systemd-analyze >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq systemd >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
