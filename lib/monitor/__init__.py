"""The monitor process, one per model: its loop, the lifecycle state machine, probes, crash
forensics, the process tree and log capture. Never loads bottle or cheroot, and never imports
``lib.daemon`` or ``lib.api``: it talks to the daemon only through the files of
``lib.core.protocol``.
"""
