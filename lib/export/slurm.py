"""Slurm: an ``sbatch`` script that runs modeld inside the allocation and deploys the models,
so the allocation keeps modeld's supervision, readiness waits and logs.

One script for every model of the export; their GPUs are summed into ``--gres=gpu:N`` (Slurm
then sets ``CUDA_VISIBLE_DEVICES``, which the daemon's models inherit, so a hand-pinned value is
dropped from the specs). ``MODELD`` (default ``modeld.pyz``) and ``MODELCTL`` (default
``$MODELD ctl``) name the programs on the nodes; the daemon's home is per job. Secret env values
are not written into the script: it sources ``$MODELD_SECRETS`` (``KEY=value`` lines), whose
variables the models inherit from the daemon.
"""

import json

from lib.export import common

SPEC_END = "MODELD_SPEC_END"


def export(specs_list, options):
    result = common.Export("slurm")
    job = "modeld-" + common.target_name(result, specs_list[0]["name"], "job name")
    gpus, embedded, secret_keys = 0, [], []
    for spec in specs_list:
        common.report_unknown_fields(result, spec)
        gpus += common.gpu_count(result, spec)
        shown, keys = _embedded_spec(result, spec)
        embedded.append(shown)
        secret_keys += keys
    lines = _preamble(job, gpus, result)
    lines += _body(embedded, secret_keys)
    result.files[job + ".sbatch"] = "\n".join(lines) + "\n"
    if secret_keys:
        result.note(
            "secrets are not in the script: put %s in a file and sbatch --export=ALL,"
            "MODELD_SECRETS=FILE" % ", ".join("%s=..." % key for key in secret_keys)
        )
    return result


def _embedded_spec(result, spec):
    """The spec the daemon in the allocation receives: no secrets, no pinned devices."""
    shown = json.loads(json.dumps(spec))
    plain, secret = common.split_env(spec)
    shown["env"] = common.env_without_gpu_pinning(spec, plain)
    gpus = shown.get("gpus")
    if gpus and gpus.get("ids"):
        shown["gpus"] = dict(gpus, count=len(gpus["ids"]))
        del shown["gpus"]["ids"]
    if common.secret_arguments(spec["command"]):
        result.note("%s: a secret flag value stays in the script's command line" % spec["name"])
    return shown, sorted(secret)


def _preamble(job, gpus, result):
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=%s" % job,
        "#SBATCH --ntasks=1",
        "#SBATCH --output=%s-%%j.out" % job,
    ]
    if gpus:
        lines.append("#SBATCH --gres=gpu:%d" % gpus)
    lines.append("# Exported by modeld for Slurm: sbatch %s.sbatch" % job)
    lines += ["# unmapped: %s" % line for line in result.unmapped_summary()]
    return lines


def _body(embedded, secret_keys):
    lines = [
        "set -euo pipefail",
        'MODELD="${MODELD:-modeld.pyz}"',
        'MODELCTL="${MODELCTL:-$MODELD ctl}"',
        'export MODELD_HOME="${MODELD_HOME:-${TMPDIR:-/tmp}/modeld-${SLURM_JOB_ID:-$$}}"',
        'mkdir -p "$MODELD_HOME"',
        'if [ -n "${MODELD_SECRETS:-}" ]; then set -a; . "$MODELD_SECRETS"; set +a; fi',
        "",
        "# modeld in the allocation; port 0: any free port, found through $MODELD_HOME.",
        'srun --ntasks=1 --overlap $MODELD run --home "$MODELD_HOME" --port 0 &',
        "daemon=$!",
        'stop_models() { $MODELD stop --home "$MODELD_HOME" --models >/dev/null || true; }',
        "trap 'stop_models; wait \"$daemon\"; exit 0' TERM INT",
        "for _ in $(seq 600); do",
        '    $MODELD status --home "$MODELD_HOME" >/dev/null 2>&1 && break',
        '    kill -0 "$daemon" 2>/dev/null || { echo "modeld did not start" >&2; exit 1; }',
        "    sleep 0.5",
        "done",
        "",
    ]
    for spec in embedded:
        timeout = int(spec["health"]["start_period"]) + 60
        lines += [
            "# %s" % spec["name"],
            "$MODELCTL deploy -f - --wait --timeout %d <<'%s'" % (timeout, SPEC_END),
            json.dumps(spec, sort_keys=True),
            SPEC_END,
        ]
    lines += ["", 'echo "modeld: every model is ready (home $MODELD_HOME)"', 'wait "$daemon"']
    return lines
