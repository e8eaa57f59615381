"""Deployments: what the operator asked for, persisted atomically in the daemon's home.

A ``Deployment`` (``lib.core.protocol``) is the desired state of one model (its
spec, the port chosen for it, running or stopped) plus ``run``, a counter bumped
each time a new monitor is started for it. The daemon is the only writer of
``deployment.json``; monitors only read it.
"""

import logging
import os
import secrets
import shutil

from lib.core import fsutil, paths, protocol, timefmt

log = logging.getLogger("modeld.registry")


# The record's fields and file format belong to the protocol: monitors read it too.
Deployment = protocol.Deployment


class Registry:
    """Loads and saves deployments under ``<home>/models``."""

    def __init__(self, home):
        self.home = home
        self.broken = {}  # name -> why its deployment.json cannot be used (from load_all)
        fsutil.ensure_directory(home.models)

    def load_all(self):
        """Every deployment on disk; a corrupt file falls back to its previous generation.

        Purges a crash interrupted are completed first: a ``.purged-*`` directory is
        never loaded as a model.
        """
        self.finish_purges()
        found, self.broken = {}, {}
        for name in self.home.model_names():
            model_paths = self.home.model(name)
            check = lambda data, name=name: Deployment.problem(data, name)  # noqa: E731
            try:
                data = fsutil.read_json(model_paths.deployment, warn=log.warning, check=check)
            except fsutil.Corrupt as error:
                # Never fatal to the others: skipped, reported by GET /models as broken.
                log.warning("the deployment of %r is unusable, skipping it: %s", name, error)
                self.broken[name] = str(error)
                continue
            record = Deployment.decode(data)
            if record is not None:
                found[name] = record
        return found

    def save(self, deployment):
        deployment.updated_at = timefmt.now_us()
        model_paths = self.home.model(deployment.name)
        fsutil.ensure_directory(model_paths.root)
        fsutil.write_json_atomic(model_paths.deployment, deployment.encode())

    def purge(self, name):
        """Remove the model's directory: record, state, events and logs."""
        root = self.home.model(name).root
        # Rename first (the commit point) so a half-finished removal never looks like a
        # deployment; a crash after it is completed by ``finish_purges`` at the next start.
        doomed = os.path.join(
            self.home.models, "%s%s-%s" % (paths.PURGED_PREFIX, name, secrets.token_hex(4))
        )
        try:
            os.rename(root, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def finish_purges(self):
        """Remove what purges interrupted by a crash left (no monitor can live there)."""
        for doomed in self.home.purged_leftovers():
            if fsutil.is_locked(os.path.join(doomed, "monitor.lock")):
                log.error("%s: a monitor still holds its lock; removing it later", doomed)
                continue
            log.warning("completing an interrupted purge: removing %s", doomed)
            shutil.rmtree(doomed, ignore_errors=True)
