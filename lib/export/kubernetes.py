"""Kubernetes: a Deployment and a Service per model (plus a Secret when it has secrets).

* Probes: a ``startupProbe`` covers ``start_period`` (``failureThreshold * periodSeconds >=
  start_period``), so a model that loads in 30 s is ready after 30 s, not after the whole period
  as with ``initialDelaySeconds`` (podman #22095); liveness and readiness take over afterwards.
* ``strategy: Recreate``: a rollout never runs two copies, so it never doubles GPU demand.
* Secrets (env keys and flag values that ``lib.core.redact`` would mask) go into a Secret and
  reach the container through ``secretKeyRef``; a secret flag value becomes ``$(VAR)``.
* ``$(`` in commands and env values is written ``$$(``: Kubernetes would expand it.
* ``stop.signal`` is ``lifecycle.stopSignal`` from Kubernetes 1.33 (alpha there, behind the
  ContainerStopSignals feature gate; it needs ``spec.os.name``); before 1.33 it is unmapped.
"""

import re

from lib.core import vocabulary
from lib.export import common, yamltext

STOP_SIGNAL_SINCE = (1, 33)
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAME_LABEL = "app.kubernetes.io/name"


def escape(text):
    """``$(VAR)`` is expanded by Kubernetes in command, args and env: ``$$(`` keeps it literal."""
    return text.replace("$(", "$$(")


def version_tuple(text):
    parts = str(text).lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError("--k8s-version must look like 1.33, not %r" % text) from None


def valid_label(key, value):
    """A label Kubernetes accepts: ``[prefix/]name`` (name <= 63) and a value <= 63."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    if len(name) > 63 or not LABEL_NAME.match(name):
        return False
    return len(value) <= 63 and bool(LABEL_VALUE.match(value))


def export(spec, options):
    """The Export of one normalized spec."""
    result = common.Export("kubernetes")
    if not options.image:
        raise ValueError("kubernetes needs --image: a model spec names no container image")
    common.report_unknown_fields(result, spec)
    name = common.target_name(result, spec["name"])
    port = common.fixed_port(result, spec, options.port)
    secret_env, argv = _secrets(result, spec, name)
    container = _container(result, spec, options, name, port, argv, secret_env)
    labels, annotations = _labels(result, spec, name)
    pod = {"containers": [container]}
    pod["terminationGracePeriodSeconds"] = common.ceil_seconds(spec["stop"]["timeout"], 0)
    if container.get("lifecycle"):
        pod["os"] = {"name": "linux"}  # stopSignal is only valid with an OS named
    _restart(result, spec)
    _logs(result, spec)
    common.report_log_probe(result, spec)
    common.report_fractions(
        result, spec, [("health", "interval"), ("health", "timeout"), ("stop", "timeout")]
    )
    if result.unmapped:
        annotations[common.UNMAPPED_ANNOTATION] = "; ".join(result.unmapped_summary())
    documents = []
    if secret_env:
        documents.append(_secret(name, secret_env, options))
    documents.append(_deployment(spec, options, name, labels, annotations, pod))
    if port is not None:
        documents.append(_service(options, name, labels, port))
    result.files[name + ".yaml"] = _header(result) + yamltext.dump_documents(documents)
    return result


def _header(result):
    lines = ["# Exported by modeld for Kubernetes."]
    lines += ["# unmapped: %s" % line for line in result.unmapped_summary()]
    return "\n".join(lines) + "\n"


def _metadata(name, options, labels=None, annotations=None):
    metadata = {"name": name}
    if options.namespace:
        metadata["namespace"] = options.namespace
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def _secrets(result, spec, name):
    """``(secret env for the Secret, argv with secret flag values as $(VAR))``."""
    plain, secret = common.split_env(spec)
    raw = spec["command"]
    argv = [escape(arg) for arg in raw]
    for index in common.secret_arguments(raw):
        key = common.secret_argument_name(index)
        secret[key] = common.secret_value_of(raw, index)
        argv[index] = common.with_secret_reference(raw, index, "$(%s)" % key)
    if any(common.masked(value) for value in secret.values()):
        result.note(
            "the daemon never sends secret values: fill in Secret %s-secrets before applying" % name
        )
    return secret, argv


def _container(result, spec, options, name, port, argv, secret_env):
    if port is not None:
        argv = [arg.replace("{port}", str(port)) for arg in argv]
    _loopback_note(result, argv)
    container = {"name": name, "image": options.image, "command": argv[:1]}
    if argv[1:]:
        container["args"] = argv[1:]
    if spec.get("cwd") not in (None, "/"):
        container["workingDir"] = spec["cwd"]
    env = _env(spec, name, port, secret_env)
    if env:
        container["env"] = env
    if port is not None:
        container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    gpus = common.gpu_count(result, spec)
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    container.update(_probes(spec))
    lifecycle = _stop_signal(result, spec, options)
    if lifecycle:
        container["lifecycle"] = lifecycle
    return container


def _loopback_note(result, argv):
    for flag, value in zip(argv, argv[1:]):
        if flag in ("--host", "-H", "--bind") and value in ("127.0.0.1", "localhost"):
            result.note("the command binds %s: a Service cannot reach it; bind 0.0.0.0" % value)


def _env(spec, name, port, secret_env):
    plain, _ = common.split_env(spec)
    plain = common.env_without_gpu_pinning(spec, plain)
    env = [{"name": key, "value": escape(value)} for key, value in plain.items()]
    if port is not None:
        env.append({"name": "PORT", "value": str(port)})
    for key in secret_env:
        reference = {"name": name + "-secrets", "key": key}
        env.append({"name": key, "valueFrom": {"secretKeyRef": reference}})
    return env


def _probe_action(health):
    if "http" in health:
        return {"httpGet": {"path": health["http"], "port": "http"}}
    if "tcp" in health:
        return {"tcpSocket": {"port": "http"}}
    return None


def _probes(spec):
    """startupProbe over start_period, then liveness (retries) and readiness."""
    health = spec["health"]
    action = _probe_action(health)
    if action is None:
        return {}
    period = common.ceil_seconds(health["interval"])
    timing = {"periodSeconds": period, "timeoutSeconds": common.ceil_seconds(health["timeout"])}
    startup = dict(action, **timing)
    startup["failureThreshold"] = common.ceil_seconds(health["start_period"] / period)
    running = dict(action, failureThreshold=health["retries"], **timing)
    return {"startupProbe": startup, "livenessProbe": running, "readinessProbe": dict(running)}


def _stop_signal(result, spec, options):
    signal = spec["stop"]["signal"]
    if signal == "SIGTERM":
        return None  # what every runtime sends anyway
    if version_tuple(options.k8s_version) >= STOP_SIGNAL_SINCE:
        result.note(
            "lifecycle.stopSignal %s needs the ContainerStopSignals feature gate (alpha in 1.33)"
            % signal
        )
        return {"stopSignal": signal}
    result.lose(
        "stop.signal",
        signal,
        "lifecycle.stopSignal exists from Kubernetes 1.33 (--k8s-version %s)" % options.k8s_version,
    )
    return None


def _labels(result, spec, name):
    labels, annotations = {NAME_LABEL: name}, {}
    if name != spec["name"]:
        annotations["modeld.io/name"] = spec["name"]
    for key, value in spec.get("labels", {}).items():
        if valid_label(key, value):
            labels[key] = value
        else:
            annotations[key] = value
            result.note(
                "label %s=%r is not a valid Kubernetes label: kept as an annotation" % (key, value)
            )
    return labels, annotations


def _restart(result, spec):
    restart = spec["restart"]
    if restart["policy"] == vocabulary.RESTART_NO:
        result.lose("restart.policy", "no", "a Deployment always restarts its container")
    elif restart["policy"] == vocabulary.RESTART_ON_FAILURE:
        result.note("restart on-failure: a Deployment restarts after a clean exit too")
    if restart["max_retries"] is not None and not common.is_default(spec, "restart", "max_retries"):
        result.lose("restart.max_retries", restart["max_retries"], "a Deployment never gives up")
    if not common.is_default(spec, "restart", "backoff"):
        result.lose(
            "restart.backoff", restart["backoff"], "the kubelet's backoff is fixed (10s..5m)"
        )
    common.report_backoff(result, spec, "the kubelet's backoff is fixed (10s..5m)")


def _logs(result, spec):
    for key in ("max_bytes", "backups"):
        if not common.is_default(spec, "logs", key):
            result.lose("logs." + key, spec["logs"][key], "the kubelet rotates container logs")


def _secret(name, secret_env, options):
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name + "-secrets", options),
        "type": "Opaque",
        "stringData": dict(secret_env),
    }


def _deployment(spec, options, name, labels, annotations, pod):
    template = {"metadata": {"labels": labels}, "spec": pod}
    body = {
        "replicas": 1,
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": {NAME_LABEL: name}},
        "template": template,
    }
    if common.probe_free(spec):
        # No probe: modeld counts a model started once it stayed up start_period seconds.
        body["minReadySeconds"] = common.ceil_seconds(spec["health"]["start_period"], 0)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, options, labels, annotations),
        "spec": body,
    }


def _service(options, name, labels, port):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, options, labels),
        "spec": {
            "selector": {NAME_LABEL: name},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
