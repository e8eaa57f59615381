"""The daemon's HTTP front: the Bottle app, its OpenAPI document, the cheroot server,
middleware, rate limiting. Runs inside the daemon process; the only package that may import
bottle (``app``) and cheroot (``server``). It reaches the supervisor only through the object
it is handed, so it imports nothing from ``lib.daemon``.
"""
