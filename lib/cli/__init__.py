"""Front ends: ``modeld`` (the daemon's command line), ``modelctl`` (argparse + urllib), the
public Python client (``lib.cli.client.Client``), the spec-from-flags builder and rendering.
``modelctl`` and the client never load bottle or cheroot.
"""
