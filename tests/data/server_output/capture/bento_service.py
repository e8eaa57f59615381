"""BentoML 1.4 service wrapping the same dummy functions as apps.py."""

import apps
import bentoml


@bentoml.service
class Dummy:
    @bentoml.api
    def predict(self, x: list[float]) -> float:
        return apps.predict(x)

    @bentoml.api
    def fnf(self) -> str:
        return str(apps.load_weights())

    @bentoml.api
    def valueerror(self) -> str:
        return str(apps.bad_value())

    @bentoml.api
    def validation(self) -> str:
        return str(apps.bad_validation())

    @bentoml.api
    def warn(self) -> dict:
        return apps.warn()

    @bentoml.api
    def chained(self) -> str:
        return str(apps.chained())
