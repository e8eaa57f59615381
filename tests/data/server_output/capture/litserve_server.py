"""LitServe server over the same dummy functions as apps.py.

Usage: litserve_server.py PORT [missing]
"""

import sys

import apps
import litserve as ls

OPS = {
    "fnf": apps.load_weights,
    "valueerror": apps.bad_value,
    "validation": apps.bad_validation,
    "warn": apps.warn,
    "chained": apps.chained,
}


class DummyAPI(ls.LitAPI):
    def setup(self, device):
        if len(sys.argv) > 2 and sys.argv[2] == "missing":
            with open("/nonexistent/models/dummy/model.pt", "rb") as f:
                f.read()
        self.model = apps.predict

    def decode_request(self, request):
        return request

    def predict(self, request):
        op = request.get("op")
        if op in OPS:
            return OPS[op]()
        return self.model(request["x"])

    def encode_response(self, output):
        return {"y": output}


if __name__ == "__main__":
    server = ls.LitServer(DummyAPI(), accelerator="cpu", workers_per_device=1)
    server.run(port=int(sys.argv[1]), host="127.0.0.1", generate_client_file=False)
