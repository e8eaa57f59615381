"""Ray Serve deployment over the same dummy functions as apps.py."""

import apps
from ray import serve
from starlette.requests import Request

OPS = {
    "fnf": apps.load_weights,
    "valueerror": apps.bad_value,
    "validation": apps.bad_validation,
    "warn": apps.warn,
    "chained": apps.chained,
}


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class Dummy:
    async def __call__(self, request: Request):
        body = await request.json()
        op = body.get("op")
        if op in OPS:
            return OPS[op]()
        return {"y": apps.predict(body["x"])}


app = Dummy.bind()
