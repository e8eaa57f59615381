"""A model's log store: level detection, the writer (run by the monitor), the reader and the
query language (run by the daemon). Imports only ``lib.core``.
"""
