"""Every word of modeld's vocabulary, once: statuses and their legal edges, health values,
desired states, probe kinds, restart policies, stop kinds and exit reasons.

A leaf module: it imports nothing. Other modules compare against these names, never against
string literals, so a new status or reason is added here and nowhere else. See DESIGN §3.
"""

STARTING = "starting"
RUNNING = "running"
STOPPING = "stopping"
STOPPED = "stopped"
BACKOFF = "backoff"
EXITED = "exited"
FAILED = "failed"
# An on-demand model (spec ``activation``) with its listener bound and no process running.
IDLE = "idle"

STATUSES = (STARTING, RUNNING, STOPPING, STOPPED, BACKOFF, EXITED, FAILED, IDLE)
# Not a model's status but its record's: deployment.json cannot be used (GET /models shows
# it with ``broken: true`` and the reason; redeploying the name replaces it).
BROKEN = "broken"

# A monitor process is alive in these; it exits after reaching a terminal one.
ACTIVE = frozenset({STARTING, RUNNING, STOPPING, BACKOFF, IDLE})
TERMINAL = frozenset({STOPPED, EXITED, FAILED})
# The model has a process in these; in the others ``health`` is ``none``.
PROCESS_RUNS = frozenset({STARTING, RUNNING, STOPPING})

HEALTH_NONE = "none"
HEALTH_STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"

HEALTH_VALUES = (HEALTH_NONE, HEALTH_STARTING, HEALTHY, UNHEALTHY)

# Every edge a model may take. ``None`` is "not started yet".
TRANSITIONS = {
    None: {STARTING, FAILED, EXITED, STOPPED, IDLE},  # IDLE: an on-demand model at deploy
    STARTING: {RUNNING, STOPPING, BACKOFF, EXITED, FAILED},
    RUNNING: {STOPPING, BACKOFF, EXITED, FAILED},
    # STARTING: a manual restart, or a connection that came during an unload; IDLE: unloaded
    STOPPING: {STOPPED, BACKOFF, EXITED, FAILED, STARTING, IDLE},
    BACKOFF: {STARTING, STOPPED, FAILED, IDLE},  # IDLE: unloaded while waiting to restart
    IDLE: {STARTING, STOPPED, FAILED},  # STARTING: the first connection; FAILED: cannot bind
    STOPPED: set(),
    EXITED: set(),
    FAILED: set(),
}

# What the operator asked for, persisted with the deployment.
DESIRED_RUNNING = "running"
DESIRED_STOPPED = "stopped"
DESIRED_STATES = (DESIRED_RUNNING, DESIRED_STOPPED)

# The probes of a spec's ``health`` section, at most one per model.
PROBE_HTTP = "http"
PROBE_TCP = "tcp"
PROBE_LOG = "log"
PROBE_KINDS = (PROBE_HTTP, PROBE_TCP, PROBE_LOG)

# Why a model is being stopped: the operator's stop, the operator's restart, a failed probe.
STOP_REQUESTED = "stop"
STOP_FOR_RESTART = "restart"
STOP_UNHEALTHY = "unhealthy"
STOP_UNLOAD = "unload"  # an on-demand model going back to idle
STOP_KINDS = (STOP_REQUESTED, STOP_FOR_RESTART, STOP_UNHEALTHY, STOP_UNLOAD)

# Why an on-demand model was unloaded (the ``reason`` of its ``-> idle`` event).
UNLOAD_IDLE_TIMEOUT = "idle_timeout"  # no open connection for activation.idle_timeout
UNLOAD_MANUAL = "manual"  # POST /models/{name}/unload
UNLOAD_EVICTED = "evicted"  # POST /models/{name}/unload?reason=evicted: memory for another
UNLOAD_REASONS = (UNLOAD_IDLE_TIMEOUT, UNLOAD_MANUAL, UNLOAD_EVICTED)

# The relay's view of an on-demand model (``activation.state`` of GET /models/{name}).
ACTIVATION_IDLE = "idle"  # nothing runs; a connection starts the model
ACTIVATION_LOADING = "loading"  # the model is starting: connections queue
ACTIVATION_READY = "ready"  # connections are relayed
ACTIVATION_UNLOADING = "unloading"  # the model is stopping: connections queue, then restart it
ACTIVATION_STATES = (ACTIVATION_IDLE, ACTIVATION_LOADING, ACTIVATION_READY, ACTIVATION_UNLOADING)

# Exit reasons: ``last_exit.reason``, events, a failed ``deploy --wait``.
REASON_STOPPED = "stopped"
REASON_COMPLETED = "completed"
REASON_CUDA_OUT_OF_MEMORY = "cuda_out_of_memory"
REASON_PORT_IN_USE = "port_in_use"
REASON_IMPORT_ERROR = "import_error"
REASON_MODEL_FILE_MISSING = "model_file_missing"
REASON_PERMISSION_DENIED = "permission_denied"
REASON_EXECUTABLE_NOT_FOUND = "executable_not_found"
REASON_CWD_NOT_FOUND = "cwd_not_found"
REASON_SPAWN_FAILED = "spawn_failed"
REASON_KILLED = "killed"
REASON_SIGNAL = "signal"
REASON_EXIT_CODE = "exit_code"
REASON_UNHEALTHY = "unhealthy"
REASON_HEALTH_TIMEOUT = "health_timeout"
REASON_MONITOR_DIED = "monitor_died"
REASON_GPU_BUSY = "gpu_busy"  # the VRAM gate: not enough free GPU memory within gpus.wait
# The model's own cgroup hit limits.memory_bytes and the kernel killed a process in it.
REASON_OOM_KILLED = "oom_killed"
REASON_LISTEN_FAILED = "listen_failed"  # an on-demand model's listener could not be bound
EXIT_REASONS = (
    REASON_STOPPED,
    REASON_COMPLETED,
    REASON_CUDA_OUT_OF_MEMORY,
    REASON_PORT_IN_USE,
    REASON_IMPORT_ERROR,
    REASON_MODEL_FILE_MISSING,
    REASON_PERMISSION_DENIED,
    REASON_EXECUTABLE_NOT_FOUND,
    REASON_CWD_NOT_FOUND,
    REASON_SPAWN_FAILED,
    REASON_KILLED,
    REASON_SIGNAL,
    REASON_EXIT_CODE,
    REASON_UNHEALTHY,
    REASON_HEALTH_TIMEOUT,
    REASON_MONITOR_DIED,
    REASON_GPU_BUSY,
    REASON_OOM_KILLED,
    REASON_LISTEN_FAILED,
)
# Exits that count as failures even with a zero code: the model was stopped for them.
PROBE_FAILURES = frozenset({REASON_UNHEALTHY, REASON_HEALTH_TIMEOUT, REASON_MONITOR_DIED})

# The ``kind`` of an event's cause when no request caused the transition (a restart by
# policy, a failed probe, a timer); a request's cause names its method, path and id.
CAUSE_POLICY = "policy"

# What a model in ``starting`` waits for before its process is spawned (``waiting_for``).
WAITING_FOR_GPU = "gpu"

# What a token may do (lib.api.scopes maps each route to one): each includes the ones before.
SCOPE_READ = "read"
SCOPE_OPERATE = "operate"
SCOPE_ADMIN = "admin"
SCOPES = (SCOPE_READ, SCOPE_OPERATE, SCOPE_ADMIN)

# How a model's limits are enforced (``limits_enforcement`` in its status).
ENFORCED_BY_CGROUP_V2 = "cgroup_v2"
ENFORCED_BY_CGROUP_V1 = "cgroup_v1"
ENFORCED_BY_RLIMIT = "rlimit"

RESTART_NO = "no"
RESTART_ON_FAILURE = "on-failure"
RESTART_ALWAYS = "always"

RESTART_POLICIES = (RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS)


class IllegalTransition(Exception):
    """A state change that the table above does not allow: a bug, never user input."""


def check_transition(old, new):
    """Raise ``IllegalTransition`` unless ``old -> new`` is an edge of the table."""
    if new not in TRANSITIONS.get(old, ()):
        raise IllegalTransition("%s -> %s" % (old, new))


def is_ready(status, health):
    """A model is ready when it runs and its probe (if any) says healthy."""
    return status == RUNNING and health in (HEALTHY, HEALTH_NONE)
