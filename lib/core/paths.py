"""Where everything lives in the daemon's home. The one place that knows the layout::

<home>/modeld.lock      flock held by the running daemon (one daemon per home)
<home>/modeld.pid       the daemon's pid, for tools
<home>/daemon.json      how to reach the running daemon (url, pid, version)
<home>/token            the API bearer token (0600): the admin token
<home>/tokens.json      named tokens with a scope, as SHA-256 digests (0600)
<home>/daemon.log       the daemon's own log (rotated: daemon.log.1, ...)
<home>/models/.purged-<name>-<hex>/   a purge under way: removed, never loaded
<home>/models/<name>/   one directory per deployed model:
    deployment.json     desired state and spec (written by the daemon)
    control.json        the latest stop/restart request (daemon -> monitor)
    state.json          observed state (written by the monitor only)
    monitor.lock        flock held by the model's monitor while it lives
    monitor.log         the monitor's own stderr
    events.jsonl        state changes (written by the monitor only)
    logs/               the model's output (see lib.logs.store)
"""

import os

# A purge renames the model's directory to this prefix first: the rename is its commit point.
PURGED_PREFIX = ".purged-"


class ModelPaths:
    def __init__(self, root):
        self.root = root
        self.home_root = os.path.dirname(os.path.dirname(root))  # <home>/models/<name>
        self.deployment = os.path.join(root, "deployment.json")
        self.control = os.path.join(root, "control.json")
        self.state = os.path.join(root, "state.json")
        self.lock = os.path.join(root, "monitor.lock")
        self.monitor_log = os.path.join(root, "monitor.log")
        self.events = os.path.join(root, "events.jsonl")
        self.logs = os.path.join(root, "logs")
        # The daemon's own: how far its metrics counters have read the logs and events.
        self.counters = os.path.join(root, "counters.json")


class Home:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.lock = os.path.join(self.root, "modeld.lock")
        self.pidfile = os.path.join(self.root, "modeld.pid")
        self.daemon_json = os.path.join(self.root, "daemon.json")
        self.token = os.path.join(self.root, "token")
        self.tokens = os.path.join(self.root, "tokens.json")
        self.daemon_log = os.path.join(self.root, "daemon.log")
        self.models = os.path.join(self.root, "models")
        self._models = {}

    def model(self, name):
        """The paths of one model (made once per name: this is on every request's path)."""
        found = self._models.get(name)
        if found is None:
            found = self._models[name] = ModelPaths(os.path.join(self.models, name))
        return found

    def model_names(self):
        """Names of the directories holding a deployment (never a purge's leftover)."""
        try:
            names = os.listdir(self.models)
        except FileNotFoundError:
            return []
        return sorted(
            name
            for name in names
            # A model name never starts with a dot: ".purged-*" and temporaries are not models.
            if not name.startswith(".")
            and os.path.isfile(os.path.join(self.models, name, "deployment.json"))
            or os.path.isfile(os.path.join(self.models, name, "deployment.json.prev"))
        )

    def purged_leftovers(self):
        """Directories of purges a crash interrupted (full paths)."""
        try:
            names = os.listdir(self.models)
        except FileNotFoundError:
            return []
        return sorted(
            os.path.join(self.models, name) for name in names if name.startswith(PURGED_PREFIX)
        )


def default_home(environ=None):
    """``MODELD_HOME``, else /var/lib/modeld for root, else the XDG state directory."""
    environ = os.environ if environ is None else environ
    if environ.get("MODELD_HOME"):
        return environ["MODELD_HOME"]
    if os.geteuid() == 0:
        return "/var/lib/modeld"
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "modeld")
