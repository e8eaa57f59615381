"""What the monitor does, before every spawn, so a model runs with the least privilege asked.

``Confinement.prepare`` runs in the monitor (as the daemon's user, usually root):
it checks the program against the daemon's ``--allow-exec`` list again (a link
swapped since the deploy does not pass), resolves ``user``/``group``, decides the
mechanism of every limit exactly as the daemon did (``lib.core.limits``), creates
the model's cgroup and writes its limits. It returns a ``ChildPlan`` that
``lib.core.system.child_setup`` runs in the child between fork and exec: join the
cgroup, set the rlimits, drop privileges, in that order (a process that gave up root
can no longer join a cgroup or raise a limit). The monitor keeps its own identity,
the pipes and the log files.

After an exit, ``oom_kills`` tells whether the cgroup's OOM killer struck; at a stop,
``pids`` lists every process in the cgroup; when the monitor ends, ``remove``.
"""

import os

from lib.core import allowexec, cgroups, identity, limits, vocabulary
from lib.errors import ModeldError


class SpawnRefused(Exception):
    """The model must not be started: ``reason`` (vocabulary) and a message."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


class ChildPlan:
    """What the child does before exec (runs after fork: no allocation-heavy work)."""

    def __init__(self, run_as, rlimits, cgroup):
        self.run_as = run_as
        self.rlimits = rlimits
        self.cgroup = cgroup

    def enter(self):
        if self.cgroup is not None:
            self.cgroup.attach(os.getpid())
        limits.apply_rlimits(self.rlimits)
        if self.run_as is not None:
            identity.drop_privileges(self.run_as)


class Confinement:
    """One model's privilege settings for the monitor's lifetime."""

    def __init__(self, name, spec, environ):
        self.spec = spec
        self.allow_list = allowexec.from_environ(environ)
        self.host = cgroups.from_environ(environ)
        self.cgroup = None
        self.decided = {}
        self.name = name

    def prepare(self, argv, env):
        """The ``ChildPlan`` of the next spawn; updates ``env`` (HOME, USER, LOGNAME)."""
        try:
            self.allow_list.check(argv[0], env, self.spec["cwd"])
        except ModeldError as error:
            raise SpawnRefused(vocabulary.REASON_PERMISSION_DENIED, error.message) from None
        try:
            run_as = identity.resolve(self.spec)
            uid = run_as.uid if run_as is not None else os.geteuid()
            self.decided = limits.enforcement(self.spec.get("limits"), self.host, uid)
        except ModeldError as error:
            raise SpawnRefused(vocabulary.REASON_SPAWN_FAILED, error.message) from None
        env.update(identity.environment(run_as))
        values = limits.cgroup_values(self.spec.get("limits") or {}, self.decided)
        if values:
            self.cgroup = self.host.model(self.name)
            try:
                self.cgroup.create(values)
            except OSError as error:
                raise SpawnRefused(
                    vocabulary.REASON_SPAWN_FAILED, "cannot set up the cgroup: %s" % error
                ) from None
        rlimits = limits.rlimit_values(self.spec.get("limits") or {}, self.decided)
        if run_as is None and not rlimits and self.cgroup is None:
            return None
        return ChildPlan(run_as, rlimits, self.cgroup)

    def oom_kills(self):
        return self.cgroup.oom_kills() if self.cgroup is not None else None

    def memory_limit(self):
        return (self.spec.get("limits") or {}).get("memory_bytes")

    def pids(self):
        """Every process in the model's cgroup (none without one)."""
        return self.cgroup.pids() if self.cgroup is not None else []

    def remove(self):
        if self.cgroup is not None:
            self.cgroup.remove()
