"""A pyfunc model for `mlflow models serve`: a tiny sklearn LinearRegression trained
in-process, plus an `op` column that makes predict raise (same errors as apps.py)."""

import mlflow.pyfunc

OPS = ("fnf", "valueerror", "validation", "warn", "chained")


class DummyModel(mlflow.pyfunc.PythonModel):
    def __init__(self, reg):
        self.reg = reg

    def predict(self, context, model_input, params=None):
        import apps

        op = str(model_input["op"].iloc[0]) if "op" in model_input else ""
        if op == "fnf":
            apps.load_weights()
        elif op == "valueerror":
            apps.bad_value()
        elif op == "validation":
            apps.bad_validation()
        elif op == "warn":
            apps.warn()
        elif op == "chained":
            apps.chained()
        return self.reg.predict(model_input[["x"]].astype(float))


def build(tracking_dir):
    """Log the model under a file: tracking URI; return the runs:/ URI."""
    import mlflow
    from sklearn.linear_model import LinearRegression

    reg = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])
    mlflow.set_tracking_uri("file://" + tracking_dir)
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="model",
            python_model=DummyModel(reg),
            code_paths=[__file__, __file__.replace("mlflow_model.py", "apps.py")],
        )
    return f"runs:/{run.info.run_id}/model"
