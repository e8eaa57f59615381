"""Who is asking, and may they: bearer tokens, scopes, and the token routes.

``identify`` turns a request into an ``Identity`` (the token's name and scope, never
the token): the home's admin token, a named token from ``tokens.json``
(``lib.core.tokens.TokenStore``), a Unix socket (its file mode is the access control:
admin), or anyone when the daemon runs with ``--no-auth``. ``authorize`` compares
the scope with ``lib.api.scopes`` and raises a 403 naming the scope that is missing.
The name goes into the WSGI environ, whence the access log line and the ``cause`` of
events take it.

``GET/POST /tokens`` and ``DELETE /tokens/<name>`` manage named tokens (admin only):
the token itself is in the POST's answer, once.
"""

import collections
import hmac
import time

import bottle

from lib import errors
from lib.api import scopes
from lib.core import tokens, vocabulary

Identity = collections.namedtuple("Identity", "name scope token")
ENVIRON_NAME = "modeld.token_name"
SOCKET_NAME = "unix-socket"
ANONYMOUS_NAME = "anonymous"


def bearer(environ):
    scheme, _, supplied = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not supplied.strip():
        return None
    return supplied.strip()


def identify(settings, environ):
    """The request's ``Identity``, or ``None`` when its token is missing or wrong."""
    if settings.token is None:
        return Identity(ANONYMOUS_NAME, vocabulary.SCOPE_ADMIN, None)
    if environ.get("modeld.trusted"):
        return Identity(SOCKET_NAME, vocabulary.SCOPE_ADMIN, None)
    supplied = bearer(environ)
    if supplied is None:
        return None
    return _by_token(settings, supplied)


def _by_token(settings, supplied):
    found = None
    if settings.token is not None and hmac.compare_digest(
        supplied.encode("utf-8", "surrogateescape"), settings.token.encode()
    ):
        found = Identity(tokens.ADMIN_TOKEN_NAME, vocabulary.SCOPE_ADMIN, supplied)
    named = settings.tokens.identify(supplied) if settings.tokens is not None else None
    if named is not None:
        found = Identity(named[0], named[1], supplied)
    return found


def still_valid(settings, identity):
    """Is the token behind ``identity`` still accepted (not revoked, not rotated)?"""
    if identity is None or identity.token is None:
        return True
    return _by_token(settings, identity.token) is not None


def authenticate(settings, environ):
    """The ``Identity`` of the request, recorded in the environ; a 401 without one."""
    identity = identify(settings, environ)
    if identity is None:
        if bearer(environ) is None:
            raise errors.UnauthorizedError("missing bearer token (Authorization: Bearer <token>)")
        raise errors.UnauthorizedError("invalid token")
    environ[ENVIRON_NAME] = identity.name
    environ["modeld.identity"] = identity
    return identity


def authorize(identity, method, rule, query):
    needed = scopes.required(method, rule, query)
    if not scopes.allows(identity.scope, needed):
        raise errors.ForbiddenError(
            "the token %r has scope %r; %s %s needs scope %r"
            % (identity.name, identity.scope, method, rule, needed),
            scope=needed,
            token=identity.name,
        )


def stream_should_stop(settings, environ):
    """A follow stream's stop test: the daemon stops, or the request's token was revoked."""
    identity = environ.get("modeld.identity")

    def should_stop():
        return settings.should_stop() or not still_valid(settings, identity)

    return should_stop


def install(app, settings, read_json, query_params):
    """The token routes (``admin`` in ``lib.api.scopes``)."""
    path = settings.tokens.path if settings.tokens is not None else None

    def store():
        if path is None:
            raise errors.BadRequestError("this daemon runs without authentication: no tokens")
        return path

    @app.get("/tokens")
    def list_tokens():
        query_params(())
        return {"tokens": [tokens.public(entry) for entry in tokens.load_named(store())]}

    @app.post("/tokens")
    def create_token():
        query_params(())
        body = read_json(settings.max_body)
        if not isinstance(body, dict) or set(body) - {"name", "scope"}:
            raise errors.ValidationError("body", 'must be {"name": ..., "scope": ...}')
        try:
            entry, token = tokens.create_named(
                store(), body.get("name"), body.get("scope"), vocabulary.SCOPES, time.time()
            )
        except tokens.TokenError as error:
            raise errors.ValidationError(error.field, str(error)) from None
        bottle.response.status = 201
        return dict(entry, token=token)

    @app.delete("/tokens/<name>")
    def revoke_token(name):
        query_params(())
        if not tokens.revoke_named(store(), name):
            raise errors.NotFoundError("no token named %r" % name, name=name)
        return {"name": name, "revoked": True}
