"""Routes of declarative models: ``PUT /models/{name}``, ``POST /apply``, ``GET
/models/{name}/spec``. Thin: the decisions are ``lib.core.specdiff`` and
``lib.daemon.applyplan``, the actions ``lib.daemon.apply``.
"""

import bottle

from lib.core import params, specdiff

WAIT_TIMEOUT_MAX = params.WAIT_TIMEOUT_MAX


def install(app, supervisor, settings, waiters, helpers):
    """Add the routes; ``helpers``: the app's ``query_params``, ``read_json``, ``cause``,
    ``model_name`` (one strict parameter reader, one body reader for every route)."""
    query_params, read_json, cause, model_name = helpers
    applier = supervisor.applier

    @app.put("/models/<name>")
    def replace_model(name):
        query = query_params(("dry_run", "wait", "timeout"))
        dry_run, wait = params.boolean(query, "dry_run"), params.boolean(query, "wait")
        timeout = params.seconds(query, "timeout", WAIT_TIMEOUT_MAX)
        name = model_name(name)
        body = read_json(settings.max_body)
        with waiters.held(wait and not dry_run):
            created, answer = applier.replace(name, body, dry_run, cause())
            if wait and not dry_run:
                answer["model"] = supervisor.wait_ready(name, timeout)
        if created:
            bottle.response.status = 201
            bottle.response.set_header("Location", "/models/%s" % name)
        return answer

    @app.post("/apply")
    def apply_models():
        query = query_params(("dry_run", "wait", "timeout"))
        dry_run, wait = params.boolean(query, "dry_run"), params.boolean(query, "wait")
        timeout = params.seconds(query, "timeout", WAIT_TIMEOUT_MAX)
        request = applier.parse_request(read_json(settings.max_body))
        with waiters.held(wait and not dry_run):
            return applier.apply(request, dry_run, wait, timeout, cause())

    @app.get("/models/<name>/spec")
    def model_spec(name):
        query_params(())
        record = supervisor.record(model_name(name))
        return {
            "spec": specdiff.exportable(record, supervisor.log_defaults),
            "set": record.owner,
            "secret_reference": specdiff.SECRET_REFERENCE,
        }
