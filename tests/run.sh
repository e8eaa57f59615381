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
# The observability tests use real tools: promtool and a Prometheus server, and headless
# Chromium for the dashboard (Debian's packages). CI installs them; elsewhere they skip.
if [ "${CI:-}" = "true" ] && ! { command -v promtool && command -v chromium; } >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus chromium >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
