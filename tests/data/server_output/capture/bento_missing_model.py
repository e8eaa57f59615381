"""A BentoML service whose model is not in the local model store."""

import bentoml


@bentoml.service
class NeedsModel:
    model = bentoml.models.BentoModel("dummy_classifier:latest")

    @bentoml.api
    def predict(self, x: list[float]) -> float:
        return sum(x)
