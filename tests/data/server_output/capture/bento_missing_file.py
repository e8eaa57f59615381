"""A BentoML service that loads weights from a file that does not exist."""

import bentoml


@bentoml.service
class LoadsFile:
    def __init__(self):
        with open("/nonexistent/models/dummy/model.pkl", "rb") as f:
            self.model = f.read()

    @bentoml.api
    def predict(self, x: list[float]) -> float:
        return sum(x)
