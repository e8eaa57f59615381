#!/usr/bin/env bash
# Check modeld's GPU supervision on a real GPU machine (python3 >= 3.9 and an NVIDIA
# driver; no CUDA toolkit, no framework, no network, builds nothing).
#
#   bash tools/gpu-check.sh [MIB]        # MIB to allocate, default 512
#
# Starts modeld from this checkout in a temporary home on a free port, deploys
# tools/cuda_alloc.py (ctypes on libcuda.so.1) with gpus: {count: 1}, and checks:
#   1. the model sees exactly 1 device (CUDA_VISIBLE_DEVICES restricts it);
#   2. modeld's gpu_memory_bytes agrees with nvidia-smi's per-process memory within 5%;
#   3. after a stop, the release check sees the memory come back (gpu_released_after_s).
# Prints the timings; exits non-zero with a message on any failure; always cleans up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
MIB="${1:-512}"
fail() { echo "gpu-check: FAIL: $*" >&2; exit 1; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || fail "python3 >= 3.9 needed"
command -v nvidia-smi >/dev/null || fail "nvidia-smi is not on PATH (no NVIDIA driver?)"
"$PYTHON" -c 'import ctypes; ctypes.CDLL("libcuda.so.1")' 2>/dev/null \
    || fail "libcuda.so.1 cannot be loaded (no NVIDIA driver?)"

# modeld itself needs bottle and cheroot: from this checkout when python3 has them,
# else the checkout's .venv, else a dist/modeld.pyz built beforehand (python3 build_zipapp.py).
if "$PYTHON" -c 'import bottle, cheroot' 2>/dev/null; then
    MODELD=("$PYTHON" "$ROOT/modeld.py")
elif [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c 'import bottle, cheroot' 2>/dev/null; then
    MODELD=("$ROOT/.venv/bin/python" "$ROOT/modeld.py")
elif [ -f "$ROOT/dist/modeld.pyz" ]; then
    MODELD=("$PYTHON" "$ROOT/dist/modeld.pyz")
else
    fail "bottle and cheroot are missing: pip install -r requirements.txt, or build dist/modeld.pyz"
fi
echo "gpu-check: modeld is ${MODELD[*]}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/modeld-gpu-check.XXXXXX")"
MODELD_HOME="$WORK/home"
cleanup() {
    "${MODELD[@]}" stop --home "$MODELD_HOME" --models --timeout 30 >/dev/null 2>&1 || true
    if [ -f "$MODELD_HOME/daemon.json" ]; then
        pid="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' \
            "$MODELD_HOME/daemon.json" 2>/dev/null || true)"
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

"${MODELD[@]}" start --home "$MODELD_HOME" --port 0 --rate-limit off \
    || fail "modeld did not start"

"$PYTHON" - "$ROOT" "$MODELD_HOME" "$MIB" "$PYTHON" <<'PY'
import json
import os
import subprocess
import sys
import time

root, home, mib, python = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, root)
from lib.cli.client import Client  # noqa: E402
from lib.core import nvidia  # noqa: E402

MIB = 1 << 20


def fail(message):
    sys.stderr.write("gpu-check: FAIL: %s\n" % message)
    sys.exit(1)


def wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return None


with open(os.path.join(home, "daemon.json")) as handle:
    url = json.load(handle)["url"]
with open(os.path.join(home, "token")) as handle:
    client = Client(url, handle.read().strip())

smi = nvidia.NvidiaSmi(nvidia.find(), timeout=10)
inventory = client.gpus()
if not inventory["gpus"]:
    fail("modeld found no GPU: %s" % inventory.get("error"))
print("gpu-check: %d GPU(s): %s" % (
    len(inventory["gpus"]), ", ".join("%s %s" % (g["index"], g["name"]) for g in inventory["gpus"])))

spec = {
    "name": "gpu-check",
    "command": [python, os.path.join(root, "tools", "cuda_alloc.py"), str(mib)],
    "gpus": {"count": 1},
    "health": {"log": "allocated", "start_period": 120},
    "restart": {"policy": "no"},
    "stop": {"timeout": 15},
}
started = time.monotonic()
try:
    model = client.deploy(spec, wait=True, timeout=120)
except Exception as error:  # noqa: BLE001 - reported, then the trap cleans up
    fail("the model did not become ready: %s" % error)
ready_s = time.monotonic() - started
assigned = model["gpus"]
if len(assigned) != 1:
    fail("expected 1 assigned GPU, got %r" % assigned)
lines = [e["msg"] for e in client.logs("gpu-check", limit=100)["entries"]]
devices = [line for line in lines if line.startswith("devices=")]
if devices != ["devices=1"]:
    fail("the model should see exactly 1 device, it printed %r" % devices)
if "visible=%s" % assigned[0]["uuid"] not in lines:
    fail("CUDA_VISIBLE_DEVICES is not the assigned UUID %s: %r" % (assigned[0]["uuid"], lines))
print("gpu-check: ok: the model sees 1 device, %s (GPU %s)" % (assigned[0]["uuid"], assigned[0]["index"]))


def attributed():
    current = client.get("gpu-check")
    if current["gpu_memory_bytes"] is None and current.get("gpu_memory_reason"):
        reason[0] = current["gpu_memory_reason"]
    return current if current["gpu_memory_bytes"] else None


reason = [None]
status = wait(attributed, 30)
if status is None:
    fail("modeld attributed no GPU memory to the model in 30s (reason: %s)" % reason[0])
attributed_s = time.monotonic() - started
pid = status["pid"]
snapshot = smi.snapshot()
if snapshot.error:
    fail("nvidia-smi: %s" % snapshot.error)
# The model's processes: its main pid and anything below it (it has no children here).
theirs = sum(app.used_memory_bytes or 0 for app in snapshot.apps if app.pid == pid)
ours = status["gpu_memory_bytes"]
if theirs < mib * MIB:
    fail("nvidia-smi shows %d MiB for pid %d, expected at least %d" % (theirs // MIB, pid, mib))
if abs(ours - theirs) > 0.05 * theirs:
    fail("modeld says %d MiB, nvidia-smi says %d MiB (more than 5%% apart)" % (ours // MIB, theirs // MIB))
print("gpu-check: ok: modeld attributes %d MiB, nvidia-smi %d MiB (pid %d)" % (ours // MIB, theirs // MIB, pid))

stop_started = time.monotonic()
client.stop("gpu-check")
stop_s = time.monotonic() - stop_started
stopped = [e for e in client.events("gpu-check") if e["to"] == "stopped"]
if not stopped:
    fail("no stopped event")
released = stopped[-1].get("gpu_released_after_s")
if released is None:
    fail("the release check did not see the memory come back: %s" % stopped[-1].get("gpu_still_held"))
after = smi.snapshot()
if any(app.pid == pid for app in after.apps):
    fail("nvidia-smi still lists pid %d after the stop" % pid)
print("gpu-check: ok: memory released %.2fs after the model's processes were gone" % released)
print("gpu-check: timings: deploy->ready %.2fs, deploy->memory attributed %.2fs, "
      "stop (incl. release check) %.2fs, release %.2fs" % (ready_s, attributed_s, stop_s, released))
print("gpu-check: PASS")
PY
