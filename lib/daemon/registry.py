"""Deployments: what the operator asked for, persisted atomically in the daemon's home.

A ``Deployment`` is the desired state of one model (its spec, the port chosen
for it, running or stopped) plus ``run``, a counter bumped each time a new
monitor is started for it, so the daemon can tell a monitor's fresh state file
from one left by an earlier run. The daemon is the only writer of
``deployment.json``; monitors only read it.
"""

import logging
import os
import secrets
import shutil

from lib.core import fsutil, timefmt, vocabulary

log = logging.getLogger("modeld.registry")


class Deployment:
    """The persisted record of one model."""

    def __init__(
        self, spec, port, run=1, deploy_id=None, desired=vocabulary.DESIRED_RUNNING, **extra
    ):
        self.spec = spec
        self.port = port
        self.run = run
        self.id = deploy_id or secrets.token_hex(6)
        self.desired = desired
        self.created_at = extra.get("created_at") or timefmt.now_us()
        self.updated_at = extra.get("updated_at") or self.created_at
        self.cause = extra.get("cause")
        # The GPUs assigned to it ([{index, uuid, name}] or None), kept until it is redeployed.
        self.gpus = extra.get("gpus")

    @property
    def name(self):
        return self.spec["name"]

    def to_dict(self):
        return {
            "schema": 1,
            "id": self.id,
            "run": self.run,
            "desired": self.desired,
            "spec": self.spec,
            "port": self.port,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "cause": self.cause,
            "gpus": self.gpus,
        }

    @classmethod
    def from_dict(cls, data):
        return cls(
            data["spec"],
            data.get("port"),
            run=data.get("run", 1),
            deploy_id=data.get("id"),
            desired=data.get("desired", vocabulary.DESIRED_RUNNING),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            cause=data.get("cause"),
            gpus=data.get("gpus"),  # absent in homes older than GPU support
        )


class Registry:
    """Loads and saves deployments under ``<home>/models``."""

    def __init__(self, home):
        self.home = home
        fsutil.ensure_directory(home.models)

    def load_all(self):
        """Every deployment on disk; a corrupt file falls back to its previous generation."""
        found = {}
        for name in self.home.model_names():
            model_paths = self.home.model(name)
            try:
                data = fsutil.read_json(model_paths.deployment, warn=log.warning)
            except fsutil.Corrupt as error:
                log.error("cannot read the deployment of %r, skipping it: %s", name, error)
                continue
            if data is None or "spec" not in data:
                continue
            found[name] = Deployment.from_dict(data)
        return found

    def save(self, deployment):
        deployment.updated_at = timefmt.now_us()
        model_paths = self.home.model(deployment.name)
        fsutil.ensure_directory(model_paths.root)
        fsutil.write_json_atomic(model_paths.deployment, deployment.to_dict())

    def purge(self, name):
        """Remove the model's directory: record, state, events and logs."""
        root = self.home.model(name).root
        # Rename first so a half-finished removal never looks like a deployment.
        doomed = os.path.join(self.home.models, ".purged-%s-%s" % (name, secrets.token_hex(4)))
        try:
            os.rename(root, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)
