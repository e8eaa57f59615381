"""The daemon process: the supervisor (spawns, adopts and replaces monitors), the registry of
deployments, preflight checks, the /proc sampler, status assembly, configuration and the
process shell (double fork, lock, signals) that serves ``lib.api``. Never imports
``lib.monitor``: monitors are separate processes, reached through ``lib.core.protocol``.
"""
