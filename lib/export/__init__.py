"""Exporters: a normalized model spec translated for another engine (Kubernetes, Nomad,
systemd, Slurm), with every field that the target cannot carry listed. Pure: text in memory,
no file system, no network, standard library only (the daemon serves them too)."""
