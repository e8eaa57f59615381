"""The daemon's least-privilege policy: whom a model runs as, which programs, which limits.

``Policy.admit`` runs on every spec the daemon accepts (deploy, and the dry run; PUT
and apply go through the same ``Supervisor.prepare``), after the pure parser and
before anything is persisted:

1. ``--default-user`` fills ``user`` where the spec sets neither ``user`` nor ``group``;
2. the identity resolves (a 400 naming ``user``, ``group`` or ``extra_groups``) and a
   daemon that is not root may not take another (a 400 naming the field);
3. the user may execute the program and enter ``cwd`` (mode bits along the path);
4. the program is on the ``--allow-exec`` list (a 403 naming ``command[0]``);
5. every limit has a mechanism on this host (a 400 naming the limit that has none).

``monitor_environ`` hands the allow-list and the cgroup layout to every monitor, which
checks the program again and applies the same decision before each spawn.
"""

import logging
import os

from lib.core import allowexec, cgroups, identity, limits
from lib.errors import ValidationError

log = logging.getLogger("modeld.privilege")


class Policy:
    """What this daemon allows: ``default_user``, an ``AllowList``, a ``CgroupHost``."""

    def __init__(self, default_user=None, allow_list=None, cgroup_host=None, cgroup_reason=None):
        self.default_user = default_user
        self.allow_list = allow_list or allowexec.AllowList()
        self.cgroup_host = cgroup_host
        self.cgroup_reason = cgroup_reason

    @classmethod
    def for_home(cls, home_root, default_user=None, allow_exec=(), use_cgroups=True):
        host, reason = cgroups.detect(home_root) if use_cgroups else (None, "disabled")
        if host is None:
            log.info("no cgroups for model limits (%s): rlimits only", reason)
        else:
            log.info("model limits through cgroup v%d: %s", host.version, host.describe())
        return cls(default_user, allowexec.AllowList(allow_exec), host, reason)

    def admit(self, spec, executable, environ):
        """Check (and complete) a parsed spec; raises the 400 or 403 that says why not."""
        if self.default_user is not None and not identity.is_set(spec):
            spec["user"] = self.default_user
        run_as = identity.resolve(spec)
        identity.check_may_switch(spec, run_as)
        if run_as is not None and os.geteuid() == 0:
            _check_access(spec, executable, run_as)
        model_env = dict(environ, **spec["env"])
        self.allow_list.check(spec["command"][0], model_env, spec["cwd"])
        self.enforcement(spec, run_as)
        return spec

    def enforcement(self, spec, run_as=None):
        """``{limit: mechanism}`` (a 400 for a limit nothing here enforces)."""
        if not spec.get("limits"):
            return {}
        if run_as is None:
            run_as = _quiet_resolve(spec)
        uid = run_as.uid if run_as is not None else os.geteuid()
        return limits.enforcement(spec["limits"], self.cgroup_host, uid)

    def describe(self, spec):
        """The ``limits_enforcement`` of a model's status (never raises)."""
        try:
            return self.enforcement(spec)
        except ValidationError as error:
            return {"error": error.message}

    def monitor_environ(self):
        found = {}
        if self.allow_list.enabled:
            found[allowexec.ENVIRON] = self.allow_list.to_environ()
        if self.cgroup_host is not None:
            found[cgroups.ENVIRON] = self.cgroup_host.to_environ()
        return found


def _quiet_resolve(spec):
    try:
        return identity.resolve(spec)
    except ValidationError:
        return None  # the user was deleted since: the monitor's spawn reports it


def _check_access(spec, executable, run_as):
    blocked = identity.may_execute(executable, run_as)
    if blocked is not None:
        raise ValidationError(
            "command[0]",
            "user %s cannot execute %s (no permission at %s)" % (run_as.user, executable, blocked),
        )
    blocked = identity.may_enter(spec["cwd"], run_as)
    if blocked is not None:
        raise ValidationError(
            "cwd",
            "user %s cannot enter %s (no permission at %s)" % (run_as.user, spec["cwd"], blocked),
        )
