"""Which scope each route needs: the one table, read by the auth plugin and by the tests.

A token's scope includes the ones before it: ``read`` (every GET: status, logs, events,
``/metrics``), ``operate`` (read, plus start, stop and restart of existing models),
``admin`` (everything: deploy, apply, PUT, purge, tokens). A route missing from
``ROUTE_SCOPES`` needs ``admin`` (fail closed); a test lists the routes that rely on
that default, so a new route gets a conscious entry. ``PUBLIC`` routes need no token.

``ESCALATIONS``: a query parameter that, when true, raises a route's scope (a stop is
``operate``; a stop with ``purge=true`` deletes the record and logs: ``admin``).
"""

from lib.core import vocabulary

READ, OPERATE, ADMIN = vocabulary.SCOPE_READ, vocabulary.SCOPE_OPERATE, vocabulary.SCOPE_ADMIN
PUBLIC = None

ROUTE_SCOPES = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/ui"): PUBLIC,  # static files; the page asks for a token and sends it
    ("GET", "/ui/<filename>"): PUBLIC,
    ("GET", "/"): READ,
    ("GET", "/openapi.json"): READ,
    ("GET", "/presets"): READ,
    ("GET", "/models"): READ,
    ("GET", "/models/<name>"): READ,
    ("GET", "/models/<name>/logs"): READ,
    ("GET", "/models/<name>/events"): READ,
    ("GET", "/models/<name>/export"): READ,
    # secrets come back as references (@stored-secret), never in clear
    ("GET", "/models/<name>/spec"): READ,
    ("GET", "/gpus"): READ,
    ("GET", "/metrics"): READ,
    ("GET", "/logs"): READ,
    ("GET", "/events"): READ,
    ("POST", "/models/<name>/start"): OPERATE,
    ("POST", "/models/<name>/restart"): OPERATE,
    ("POST", "/models/<name>/unload"): OPERATE,
    ("DELETE", "/models/<name>"): OPERATE,
    ("POST", "/models"): ADMIN,
    ("PUT", "/models/<name>"): ADMIN,
    ("POST", "/apply"): ADMIN,
    ("GET", "/tokens"): ADMIN,
    ("POST", "/tokens"): ADMIN,
    ("DELETE", "/tokens/<name>"): ADMIN,
}
ESCALATIONS = {("DELETE", "/models/<name>"): {"purge": ADMIN}}


def declared(method, rule):
    """Is the route in the table (``False``: it falls back to ``admin``)?"""
    return (method, rule) in ROUTE_SCOPES


def required(method, rule, query=None):
    """The scope a request needs (``PUBLIC``: none), ``admin`` for an undeclared route."""
    scope = ROUTE_SCOPES.get((method, rule), ADMIN)
    for parameter, raised in ESCALATIONS.get((method, rule), {}).items():
        # Anything but absent or "false" escalates: a malformed value fails closed.
        if query and query.get(parameter) not in (None, "", "false"):
            scope = _higher(scope, raised)
    return scope


def allows(held, needed):
    """Does a token of scope ``held`` cover ``needed``?"""
    if needed is PUBLIC:
        return True
    if held not in vocabulary.SCOPES:
        return False
    return vocabulary.SCOPES.index(held) >= vocabulary.SCOPES.index(needed)


def _higher(first, second):
    if first is PUBLIC:
        return second
    return max(first, second, key=vocabulary.SCOPES.index)
