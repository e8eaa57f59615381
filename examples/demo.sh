#!/usr/bin/env bash
# Build dist/modeld.pyz, start the daemon (unless it runs already) and deploy the
# example model; then print how to query it. Needs only python3 >= 3.9.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 build_zipapp.py
modeld="$PWD/dist/modeld.pyz"
"$modeld" status >/dev/null || "$modeld" start
if ! "$modeld" ctl status tiny >/dev/null 2>&1 || ! "$modeld" ctl --json status tiny | grep -q '"ready": true'; then
    "$modeld" ctl rm tiny >/dev/null 2>&1 || true
    "$modeld" ctl deploy -f examples/tiny-model.json --wait
fi
port=$("$modeld" ctl --json status tiny | python3 -c 'import json, sys; print(json.load(sys.stdin)["port"])')
cat <<DONE

The example model runs under modeld. Ask it something:

  curl -s -d '{"text": "modeld makes serving great"}' http://127.0.0.1:$port/predict

Look around:   dist/modeld.pyz ctl ps     dist/modeld.pyz ctl logs tiny -f     dist/modeld.pyz ctl status tiny
Clean up:      dist/modeld.pyz ctl rm tiny && dist/modeld.pyz stop
DONE
