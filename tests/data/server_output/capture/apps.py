"""The dummy user apps the captures serve: one ASGI (FastAPI) and one WSGI app with the
same routes. No model weights; the "model" is a pure-Python function."""

import json
import warnings

import pydantic

warnings.filterwarnings("default", category=DeprecationWarning, module=__name__)
print("user code: dummy model loaded (sum of inputs)", flush=True)


class Item(pydantic.BaseModel):
    x: list[float]
    name: str


def predict(xs):
    return sum(xs)


def load_weights():
    with open("/nonexistent/models/dummy/weights.bin", "rb") as f:
        return f.read()


def bad_value():
    raise ValueError(
        "input rejected:\n  expected 4 features, got 3\n  hint: check the preprocessing step"
    )


def bad_validation():
    return Item.model_validate({"x": ["a"], "extra": 1})


def warn():
    warnings.warn("threshold 0.7 is outside the calibrated range", UserWarning)  # noqa: B028
    warnings.warn("predict(raw=True) is deprecated, use predict_raw()", DeprecationWarning)  # noqa: B028
    return {"warned": True}


def chained():
    try:
        return {"a": 1}["missing_key"]
    except KeyError:
        # implicit chaining on purpose: "During handling of the above exception, ..."
        raise RuntimeError("could not read config entry")  # noqa: B904


ERRORS = {
    "/fnf": load_weights,
    "/valueerror": bad_value,
    "/validation": bad_validation,
    "/chained": chained,
}

try:
    import fastapi

    app = fastapi.FastAPI()

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.post("/predict")
    def predict_route(item: Item):
        return {"y": predict(item.x)}

    @app.get("/warn")
    def warn_route():
        return warn()

    for _path, _fn in ERRORS.items():
        app.add_api_route(_path, (lambda fn: lambda: fn())(_fn), methods=["GET"])
except ImportError:  # WSGI only
    app = None


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/health":
        body = {"ok": True}
    elif path == "/predict":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        item = Item.model_validate_json(environ["wsgi.input"].read(n))
        body = {"y": predict(item.x)}
    elif path == "/warn":
        body = warn()
    elif path in ERRORS:
        body = ERRORS[path]()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
