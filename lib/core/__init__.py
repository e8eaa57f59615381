"""Shared by every process (daemon, monitor, client): the vocabulary, the model spec, the
daemon<->monitor protocol, paths of a home, crash-safe files, time, /proc readers, redaction.

Imports nothing above it: no other package of ``lib`` and no third-party module.
"""
