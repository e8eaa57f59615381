"""The status payload of ``GET /models/{name}``: pure assembly from what the daemon knows.

Inputs are the deployment (desired state), the monitor's state file, whether
its monitor lives, and the sampled metrics; nothing here touches the machine, except
``wait_timeout_error``, which reads the model's log back (bounded) for the reason so far.
"""

from lib import errors
from lib.core import protocol, redact, timefmt, vocabulary
from lib.core import spec as specs
from lib.logs import diagnosis, reader


def model_status(deployment, state, monitor, metrics, now_us, gpu=None):
    """The payload for one model.

    ``state``: the monitor's ``protocol.MonitorState`` (any run) or ``None``. ``monitor``: a
    dict with ``alive`` (its lock is held) and ``failure`` (why the monitor
    itself could not start or keeps dying, if so). ``gpu``: the model's GPU view
    (``lib.daemon.gpus.model_view``).
    """
    fresh = state is not None and state.run == deployment.run
    status, health, reason = _status_triple(deployment, state if fresh else None, monitor)
    if status not in vocabulary.PROCESS_RUNS:
        health = vocabulary.HEALTH_NONE  # no process runs (a state file from an older monitor)
    current = state if fresh else protocol.MonitorState()
    pid = current.pid if status in vocabulary.ACTIVE else None
    started_at = current.started_at
    port = deployment.port
    last_exit = state.last_exit if state is not None else None
    return {
        "name": deployment.name,
        "status": status,
        "health": health,
        "ready": vocabulary.is_ready(status, health),
        "reason": reason,
        "desired": deployment.desired,
        "pid": pid,
        "port": port,
        "endpoint": _endpoint(deployment, port),
        "activation": _activation(deployment, current, status),
        "created_at": timefmt.format_us(deployment.created_at),
        "started_at": timefmt.format_us(started_at),
        "restarts": current.restarts,
        "next_restart_at": timefmt.format_us(current.next_start_at),
        "last_exit": _exit(last_exit),
        "metrics": _metrics(metrics, pid is not None, started_at, status, now_us),
        "waiting_for": current.waiting_for if status == vocabulary.STARTING else None,
        "gpus": (gpu or {}).get("gpus", []),
        "gpu_memory_bytes": (gpu or {}).get("gpu_memory_bytes"),
        "gpu_memory_reason": (gpu or {}).get("gpu_memory_reason"),
        "monitor": {"pid": current.monitor_pid, "alive": monitor["alive"]},
        "command": redact.redact_argv(
            specs.resolve_command(deployment.spec, port, deployment.gpus)
        ),
        "spec": redact.redact_spec(deployment.spec),
    }


def _endpoint(deployment, port):
    """Where clients connect: an on-demand model's listener, else the model's own port."""
    section = deployment.spec.get("activation")
    if section is not None and deployment.listen:
        host = section["host"]
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return "http://%s:%d" % ("[%s]" % host if ":" in host else host, deployment.listen)
    return "http://127.0.0.1:%d" % port if port else None


def _activation(deployment, state, status):
    """``listen``, ``state``, ``pending``, ``connections``, ``last_activity``, ``unloads``
    (``None`` for a model without ``activation``)."""
    if deployment.spec.get("activation") is None:
        return None
    relay = (state.activation or {}) if status in vocabulary.ACTIVE else {}
    return {
        "listen": deployment.listen,
        "state": relay.get("state"),
        "pending": relay.get("pending", 0),
        "connections": relay.get("connections", 0),
        "last_activity": timefmt.format_us(relay.get("last_activity")),
        "unloads": relay.get("unloads", 0),
        "refused": relay.get("refused", 0),
    }


def _status_triple(deployment, state, monitor):
    if state is not None:
        status, health, reason = state.status, state.health, state.reason
        if status in vocabulary.ACTIVE and not monitor["alive"]:
            if monitor["failure"]:
                return vocabulary.FAILED, vocabulary.HEALTH_NONE, monitor["failure"]
            reason = "its monitor is gone; a new one is taking over"
        return status, health, reason
    if monitor["failure"]:
        return vocabulary.FAILED, vocabulary.HEALTH_NONE, monitor["failure"]
    if monitor["alive"] or deployment.desired == vocabulary.DESIRED_RUNNING:
        probe = specs.probe_kind(deployment.spec["health"]) is not None
        health = vocabulary.HEALTH_STARTING if probe else vocabulary.HEALTH_NONE
        return vocabulary.STARTING, health, "its monitor is starting"
    return vocabulary.STOPPED, vocabulary.HEALTH_NONE, vocabulary.REASON_STOPPED


def _exit(last_exit):
    if not last_exit:
        return None
    shown = {
        "code": last_exit.get("code"),
        "signal": last_exit.get("signal"),
        "at": timefmt.format_us(last_exit.get("at")),
        "reason": last_exit.get("reason"),
        "cause": last_exit.get("cause"),
        "oom_killer": last_exit.get("oom_killer"),
        "first_error": last_exit.get("first_error") or [],
        "last_lines": last_exit.get("last_lines") or [],
    }
    if last_exit.get("limit"):  # oom_killed: the limit the model's cgroup hit
        shown["limit"] = last_exit["limit"]
    return shown


def _metrics(sample, live, started_at, status, now_us):
    """``sample``: the last sample, or just ``log_bytes`` for a model with no process."""
    sample = sample or {}
    if not live:
        sample = {"log_bytes": sample.get("log_bytes", 0)}
    uptime = None
    if status in (vocabulary.STARTING, vocabulary.RUNNING, vocabulary.STOPPING) and started_at:
        uptime = round(max(0, now_us - started_at) / 1_000_000, 3)
    return {
        "cpu_percent": sample.get("cpu_percent"),
        "rss_bytes": sample.get("rss_bytes"),
        "threads": sample.get("threads"),
        "uptime_s": uptime,
        "log_bytes": sample.get("log_bytes", 0),
    }


def deployment_error(current):
    """The ``DeploymentError`` for a model (its payload) that exited or failed while starting."""
    last_exit = current.get("last_exit") or {}
    return errors.DeploymentError(
        "model %r %s before it was ready: %s"
        % (current["name"], current["status"], current["reason"]),
        name=current["name"],
        status=current["status"],
        exit_code=last_exit.get("code"),
        signal=last_exit.get("signal"),
        reason=last_exit.get("reason") or current["status"],
        cause=last_exit.get("cause"),
        first_error=last_exit.get("first_error") or [],
        last_lines=last_exit.get("last_lines") or [],
    )


def wait_timeout_error(current, timeout, log_directory):
    """The ``WaitTimeoutError`` for a model still not ready: its status, the reason its
    output gives so far (a server restarting a failing worker never exits), its last lines."""
    started = timefmt.parse_rfc3339(current["started_at"]) if current.get("started_at") else 0
    log = reader.LogReader(log_directory)
    first_seq = log.seq_at_ts(started) or log.next_seq()
    entries = diagnosis.read_run(log_directory, first_seq)
    found, _ = diagnosis.text_reason(entries)
    return errors.WaitTimeoutError(
        "model %r is still %s after %gs%s"
        % (
            current["name"],
            current["status"],
            timeout,
            " (its output says: %s)" % found.replace("_", " ") if found else "",
        ),
        name=current["name"],
        status=current["status"],
        health=current["health"],
        reason=found,
        status_reason=current.get("reason"),
        first_error=diagnosis.first_error(entries),
        last_lines=diagnosis.last_lines(entries),
    )
