"""Nomad: a ``service`` job whose one task runs the model with ``raw_exec``.

* The working directory through a portable wrapper (``/bin/sh -c 'cd "$1" ... exec "$@"'``,
  arguments passed positionally, never re-parsed by a shell); ``{port}`` becomes
  ``${NOMAD_PORT_http}`` of a dynamic port (or a static one for a fixed port).
* The probe is a service check with ``check_restart`` (``limit`` = retries, ``grace`` =
  start_period); ``kill_signal`` / ``kill_timeout`` from ``stop`` (clients cap the timeout at
  their ``max_kill_timeout``, 30 s by default: a note says so when the spec asks for more).
* Secrets come from a Nomad Variable (``nomad/jobs/JOB``) through a ``template`` with
  ``env = true``; GPUs are a ``device "nvidia/gpu"`` count and ``CUDA_VISIBLE_DEVICES`` is
  taken from ``NVIDIA_VISIBLE_DEVICES``. Literal ``${`` and ``%{`` are escaped.
"""

import re

from lib.core import vocabulary
from lib.export import common
from lib.export.hcltext import Block, Raw, dump, escape

CWD_WRAPPER = 'cd "$1" || exit 127; shift; exec "$@"'
PORT_REFERENCE = "${NOMAD_PORT_http}"
DEFAULT_MAX_KILL_TIMEOUT = 30
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def seconds(value):
    return "%gs" % value


def export(spec, options):
    result = common.Export("nomad")
    common.report_unknown_fields(result, spec)
    name = common.target_name(result, spec["name"], "job name")
    plain, secret, argv = _secrets(result, spec, name)
    task_body = [("driver", "raw_exec"), Block("config", body=_config(spec, argv))]
    env = _env(result, spec, plain)
    if env:
        task_body.append(Block("env", body=env))
    if secret:
        task_body.append(_secret_template(result, name, secret))
    task_body += _stop(result, spec)
    task_body.append(_logs(spec))
    gpus = common.gpu_count(result, spec)
    if gpus:
        device = Block("device", ["nvidia/gpu"], [("count", gpus)])
        task_body.append(Block("resources", body=[device]))
    group_body = [("count", 1)]
    if spec.get("port") is not None:
        group_body.append(Block("network", body=[_port(spec)]))
    group_body.append(_restart(result, spec))
    service = _service(result, spec, name)
    if service:
        group_body.append(service)
    group_body.append(Block("task", [name], task_body))
    job_body = [("type", "service")]
    meta = _meta(result, spec)
    common.report_log_probe(result, spec)
    if result.unmapped:
        meta.append(("modeld_unmapped", "; ".join(result.unmapped_summary())))
    if meta:
        job_body.append(Block("meta", body=meta))
    job_body.append(Block("group", [name], group_body))
    header = ["# Exported by modeld for Nomad (nomad job run %s.nomad.hcl)." % name]
    header += ["# unmapped: %s" % line for line in result.unmapped_summary()]
    result.files[name + ".nomad.hcl"] = (
        "\n".join(header) + "\n" + dump(Block("job", [name], job_body)) + "\n"
    )
    return result


def _secrets(result, spec, name):
    plain, secret = common.split_env(spec)
    raw = spec["command"]
    argv = [Raw(escape(arg)) for arg in raw]
    for index in common.secret_arguments(raw):
        key = common.secret_argument_name(index)
        secret[key] = common.secret_value_of(raw, index)
        prefix = escape(common.with_secret_reference(raw, index, ""))
        argv[index] = Raw(prefix + "${%s}" % key)
    if secret:
        pairs = " ".join("%s=..." % key for key in secret)
        result.note(
            "secrets are read from the Nomad Variable nomad/jobs/%s: nomad var put nomad/jobs/%s %s"
            % (name, name, pairs)
        )
    return plain, secret, argv


def _config(spec, argv):
    argv = [Raw(arg.replace("{port}", PORT_REFERENCE)) for arg in argv]
    args = ["-c", CWD_WRAPPER, "modeld-cwd", spec.get("cwd") or "/"] + argv
    return [("command", "/bin/sh"), ("args", args)]


def _env(result, spec, plain):
    env = [(key, value) for key, value in common.env_without_gpu_pinning(spec, plain).items()]
    if spec.get("port") is not None:
        env.append(("PORT", Raw(PORT_REFERENCE)))
    gpus = spec.get("gpus") or spec.get("env", {}).get("CUDA_VISIBLE_DEVICES")
    if gpus:
        env.append(("CUDA_VISIBLE_DEVICES", Raw("${NVIDIA_VISIBLE_DEVICES}")))
    return env


def _secret_template(result, name, secret):
    lines = ['{{ with nomadVar "nomad/jobs/%s" }}' % name]
    lines += ["%s={{ .%s }}" % (key, key) for key in secret]
    lines.append("{{ end }}")
    return Block(
        "template",
        body=[
            ("data", "\n".join(lines) + "\n"),
            ("destination", "secrets/modeld.env"),
            ("env", True),
        ],
    )


def _port(spec):
    if isinstance(spec["port"], int):
        return Block("port", ["http"], [("static", spec["port"])])
    return Block("port", ["http"])


def _stop(result, spec):
    timeout = spec["stop"]["timeout"]
    if timeout > DEFAULT_MAX_KILL_TIMEOUT:
        result.note(
            "kill_timeout %s: Nomad clients cap it at their max_kill_timeout (30s by default); "
            "raise it in the client configuration" % seconds(timeout)
        )
    return [("kill_signal", spec["stop"]["signal"]), ("kill_timeout", seconds(timeout))]


def _logs(spec):
    megabytes = common.ceil_seconds(spec["logs"]["max_bytes"] / (1024 * 1024))
    return Block(
        "logs",
        body=[("max_files", max(1, spec["logs"]["backups"] + 1)), ("max_file_size", megabytes)],
    )


def _restart(result, spec):
    restart = spec["restart"]
    if restart["policy"] == vocabulary.RESTART_NO:
        return Block("restart", body=[("attempts", 0), ("mode", "fail")])
    if restart["policy"] == vocabulary.RESTART_ON_FAILURE:
        result.note("restart on-failure: a Nomad service task is restarted after a clean exit too")
    if not common.is_default(spec, "restart", "backoff"):
        result.note("restart.backoff %s is a fixed delay in Nomad" % seconds(restart["backoff"]))
    common.report_backoff(result, spec, "Nomad restarts after a fixed delay, without a curve")
    body = [("delay", seconds(restart["backoff"]))]
    if restart["max_retries"] is None:
        body += [("attempts", 10), ("interval", "5m"), ("mode", "delay")]
    else:
        result.note("restart.max_retries counts failures within 24h in Nomad")
        body += [("attempts", restart["max_retries"]), ("interval", "24h"), ("mode", "fail")]
    return Block("restart", body=body)


def _service(result, spec, name):
    health = spec["health"]
    if spec.get("port") is None:
        return None
    body = [("name", name), ("port", "http"), ("provider", "nomad")]
    check = None
    if "http" in health:
        check = [("type", "http"), ("path", health["http"])]
    elif "tcp" in health:
        check = [("type", "tcp")]
    if check is not None:
        check += [
            ("interval", seconds(health["interval"])),
            ("timeout", seconds(health["timeout"])),
        ]
        check.append(
            Block(
                "check_restart",
                body=[
                    ("limit", health["retries"]),
                    ("grace", seconds(health["start_period"])),
                    ("ignore_warnings", False),
                ],
            )
        )
        body.append(Block("check", body=check))
    return Block("service", body=body)


def _meta(result, spec):
    meta = []
    for key, value in spec.get("labels", {}).items():
        identifier = re.sub(r"[^A-Za-z0-9_]", "_", key)
        if not IDENTIFIER.match(identifier):
            identifier = "_" + identifier
        if identifier != key:
            result.rename("label", key, identifier)
        meta.append((identifier, value))
    return meta
