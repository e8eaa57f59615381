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
# Some tests use real system tools from Debian's packages: systemd-analyze (the systemd
# exports), promtool and a Prometheus server (the metrics), headless Chromium (the
# dashboard). CI installs what is missing; elsewhere those tests skip and say so.
if [ "${CI:-}" = "true" ]; then
    missing=()
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v chromium >/dev/null || missing+=(chromium)
    if [ "${#missing[@]}" -gt 0 ]; then
        sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
