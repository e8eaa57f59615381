"""systemd: a service unit per model (the model run directly, systemd restarting it) and
``modeld.service``, the unit that runs modeld itself (which keeps probes, backoff and logs).

Quoting follows systemd.service(5): every argument of ``ExecStart=`` is double-quoted with C
escapes, ``$`` is written ``$$`` and ``%`` ``%%`` (else systemd expands them), and a lone ``;``
is ``\\;``. Secrets go to an ``EnvironmentFile=`` written beside the unit (mode 0600 when saved
with ``-o``), and a secret flag value becomes ``${MODELD_SECRET_ARG_N}`` read from it.
"""

import json
import os

from lib.core import vocabulary
from lib.export import common

UNIT_DIRECTORY = "/etc/systemd/system"
SECRETS_DIRECTORY = "/etc/modeld"
RESTART = {
    vocabulary.RESTART_NO: "no",
    vocabulary.RESTART_ON_FAILURE: "on-failure",
    vocabulary.RESTART_ALWAYS: "always",
}


class _Reference(str):
    """An argument ending in ``${KEY}``: quoted, then the reference appended unescaped."""

    def __new__(cls, prefix, key):
        value = super().__new__(cls, prefix)
        value.key = key
        return value


def quote(arg):
    """One ``ExecStart=`` argument, literal whatever it holds (but a ``_Reference``'s key)."""
    if arg == ";":
        return "\\;"
    inner = json.dumps(str(arg), ensure_ascii=False)[1:-1]
    inner = inner.replace("$", "$$").replace("%", "%%")
    if isinstance(arg, _Reference):
        inner += "${%s}" % arg.key
    return '"%s"' % inner


def quote_assignment(key, value):
    """``"KEY=value"`` for ``Environment=`` and environment files (``%`` doubled)."""
    inner = json.dumps("%s=%s" % (key, value), ensure_ascii=False)[1:-1]
    return '"%s"' % inner.replace("%", "%%")


def environment_file_value(value):
    """A value for an ``EnvironmentFile=``: double-quoted, ``\\ " $ ` `` escaped."""
    for char in ("\\", '"', "$", "`"):
        value = value.replace(char, "\\" + char)
    return '"%s"' % value


def seconds(value):
    return "%gs" % value if value else "1ms"  # 0 would mean "no timeout" to systemd


def unit_name(name):
    return "modeld-%s.service" % name


def export(spec, options):
    result = common.Export("systemd")
    common.report_unknown_fields(result, spec)
    name = spec["name"]
    port = common.fixed_port(result, spec, options.port)
    plain, secret = common.split_env(spec)
    argv = _argv(spec, port, secret)
    environment = dict(plain, **_gpu_env(result, spec))
    if port is not None:
        environment["PORT"] = str(port)
    secrets_path = os.path.join(SECRETS_DIRECTORY, name + ".env")
    service = [
        "Type=exec",
        "ExecStart=" + " ".join(quote(arg) for arg in argv),
        "WorkingDirectory=" + (spec.get("cwd") or "/").replace("%", "%%"),
    ]
    service += ["Environment=" + quote_assignment(key, value) for key, value in environment.items()]
    if secret:
        service.append("EnvironmentFile=" + secrets_path)
        result.files[name + ".env"] = "".join(
            "%s=%s\n" % (key, environment_file_value(value)) for key, value in secret.items()
        )
        result.note("install %s.env as %s (mode 0600): it holds the secrets" % (name, secrets_path))
        if any(common.masked(value) for value in secret.values()):
            result.note("the daemon never sends secret values: fill in %s.env" % name)
    service += _restart(result, spec)
    service += [
        "TimeoutStopSec=" + seconds(spec["stop"]["timeout"]),
        "KillSignal=" + spec["stop"]["signal"],
        "KillMode=control-group",
    ]
    unit = _unit_section(result, spec) + ["", "[Service]"] + service
    _health(result, spec)
    _logs(result, spec)
    header = ["# Exported by modeld for systemd: %s/%s" % (UNIT_DIRECTORY, unit_name(name))]
    header += ["# unmapped: %s" % line for line in result.unmapped_summary()]
    text = header + unit + ["", "[Install]", "WantedBy=multi-user.target", ""]
    result.files[unit_name(name)] = "\n".join(text)
    return result


def _argv(spec, port, secret):
    raw = spec["command"]
    argv = list(raw)
    if "/" in argv[0] and not argv[0].startswith("/"):
        argv[0] = os.path.normpath(os.path.join(spec.get("cwd") or "/", argv[0]))
    if port is not None:
        argv = [arg.replace("{port}", str(port)) for arg in argv]
    quoted_references = {}
    for index in common.secret_arguments(raw):
        key = common.secret_argument_name(index)
        secret[key] = common.secret_value_of(raw, index)
        quoted_references[index] = key
    return [
        _Reference(common.with_secret_reference(argv, index, ""), quoted_references[index])
        if index in quoted_references
        else arg
        for index, arg in enumerate(argv)
    ]


def _gpu_env(result, spec):
    """systemd picks no GPU: pinned ids are exact, a bare count is not carried."""
    gpus = spec.get("gpus") or {}
    if gpus.get("ids"):
        return {"CUDA_VISIBLE_DEVICES": ",".join(gpus["ids"]), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if gpus.get("count"):
        result.lose("gpus.count", gpus["count"], "systemd assigns no GPUs: pin ids instead")
    for key in ("min_free_mib", "wait"):
        if gpus.get(key):
            result.lose("gpus." + key, gpus[key], "no VRAM gate before a start")
    return {}


def _unit_section(result, spec):
    lines = [
        "[Unit]",
        "Description=%s (exported by modeld)" % spec["name"].replace("%", "%%"),
        "After=network-online.target",
        "Wants=network-online.target",
    ]
    restart = spec["restart"]
    if restart["policy"] != vocabulary.RESTART_NO:
        if restart["max_retries"] is None:
            lines.append("StartLimitIntervalSec=0")
        else:
            result.note("restart.max_retries counts starts within a day under systemd")
            lines += [
                "StartLimitIntervalSec=1d",
                "StartLimitBurst=%d" % (restart["max_retries"] + 1),
            ]
    labels = " ".join("%s=%s" % item for item in spec.get("labels", {}).items())
    if labels:
        lines.append("X-Modeld-Labels=" + labels.replace("%", "%%").replace("\n", " "))
    return lines


def _restart(result, spec):
    restart = spec["restart"]
    if not common.is_default(spec, "restart", "backoff_max"):
        result.lose("restart.backoff_max", restart["backoff_max"], "RestartSec= is a fixed delay")
    if not common.is_default(spec, "restart", "reset_after"):
        result.lose("restart.reset_after", restart["reset_after"], "systemd counts starts instead")
    return ["Restart=" + RESTART[restart["policy"]], "RestartSec=" + seconds(restart["backoff"])]


def _health(result, spec):
    health = spec["health"]
    for kind in vocabulary.PROBE_KINDS:
        if kind in health:
            why = "systemd probes nothing: run the model under modeld.service to keep it"
            result.lose("health." + kind, health[kind], why)


def _logs(result, spec):
    for key in ("max_bytes", "backups"):
        if not common.is_default(spec, "logs", key):
            result.lose("logs." + key, spec["logs"][key], "journald rotates the output")


def daemon_unit(options):
    """``modeld.service``: modeld itself, whose models keep its probes, backoff and logs."""
    argv = [options.modeld_path, "run", "--home", options.modeld_home]
    lines = [
        "# modeld itself: %s/modeld.service" % UNIT_DIRECTORY,
        "[Unit]",
        "Description=modeld: deploys and supervises model servers",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(quote(arg) for arg in argv),
        "Restart=on-failure",
        "RestartSec=2s",
        # Only the daemon: its monitors and models keep running across a daemon restart and
        # are adopted again (DESIGN §2); `modeld stop --models` stops them.
        "KillMode=process",
        "TimeoutStopSec=130s",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)
