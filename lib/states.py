"""The vocabulary of a model's life: statuses, health values and the legal edges.

A leaf module: it imports nothing from modeld. See DESIGN §3 "States".
"""

STARTING = "starting"
RUNNING = "running"
STOPPING = "stopping"
STOPPED = "stopped"
BACKOFF = "backoff"
EXITED = "exited"
FAILED = "failed"

STATUSES = (STARTING, RUNNING, STOPPING, STOPPED, BACKOFF, EXITED, FAILED)

# A monitor process is alive in these; it exits after reaching a terminal one.
ACTIVE = frozenset({STARTING, RUNNING, STOPPING, BACKOFF})
TERMINAL = frozenset({STOPPED, EXITED, FAILED})

HEALTH_NONE = "none"
HEALTH_STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"

HEALTH_VALUES = (HEALTH_NONE, HEALTH_STARTING, HEALTHY, UNHEALTHY)

# Every edge a model may take. ``None`` is "not started yet".
TRANSITIONS = {
    None: {STARTING, FAILED, EXITED, STOPPED},
    STARTING: {RUNNING, STOPPING, BACKOFF, EXITED, FAILED},
    RUNNING: {STOPPING, BACKOFF, EXITED, FAILED},
    STOPPING: {STOPPED, BACKOFF, EXITED, FAILED, STARTING},  # STARTING: a manual restart
    BACKOFF: {STARTING, STOPPED, FAILED},
    STOPPED: set(),
    EXITED: set(),
    FAILED: set(),
}

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
