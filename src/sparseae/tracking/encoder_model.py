"""The trained encoder as an MLflow model made from code (no pickle): ``m × v`` in, the
``m × h`` hidden activations ``sigmoid(X W1ᵀ + b1)`` out."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from unittest import mock

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class SparseEncoder(PythonModel):
    """Hidden activations of a sparse autoencoder whose parameters are in ``theta.npz``."""

    def load_context(self, context):
        """Read ``theta`` and split off ``W1`` (h × v, column-major as in theta) and ``b1``."""
        sizes = json.loads(Path(context.artifacts["sizes"]).read_text(encoding="utf-8"))
        v, h = int(sizes["visible_size"]), int(sizes["hidden_size"])
        with np.load(context.artifacts["theta"], allow_pickle=False) as data:
            theta = np.asarray(data["theta"], dtype=np.float64)
        self.W1 = theta[: h * v].reshape((h, v), order="F")
        self.b1 = theta[2 * h * v : 2 * h * v + h]

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        """``m × v`` examples -> ``m × h`` hidden activations (float64)."""
        # The signature (m × v, float64) is enforced by MLflow before this is called.
        z = np.asarray(model_input, dtype=np.float64) @ self.W1.T + self.b1
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-z))


mlflow.models.set_model(SparseEncoder())


def log_encoder(
    tracking_uri: str,
    run_id: str,
    theta_path,
    sizes: tuple[int, int],
    *,
    step: int = 0,
    tags: dict | None = None,
    input_example=None,
):
    """Log ``theta_path`` (layer ``sizes``: visible, hidden) as the logged model ``encoder`` of
    run ``run_id``; return its info."""
    from mlflow.models import Model, ModelSignature
    from mlflow.types import Schema, TensorSpec

    # m × visible in, m × hidden out, float64.
    inputs, outputs = (Schema([TensorSpec(np.dtype(np.float64), (-1, n))]) for n in sizes)
    signature = ModelSignature(inputs=inputs, outputs=outputs)
    experiment_id = mlflow.MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    # Model logging reads the global tracking URI and experiment: set for this call only (the
    # environment, which MLflow reads when nothing set them in-process, is restored afterwards).
    environ = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_EXPERIMENT_ID": experiment_id}
    with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, environ):
        # The layer sizes travel as a small JSON artifact: a model_config would also be
        # logged as params of the run, beside the config's own.
        layers = Path(tmp) / "sizes.json"
        layers.write_text(json.dumps({"visible_size": sizes[0], "hidden_size": sizes[1]}))
        # Model.log with an explicit run: mlflow.pyfunc.log_model would start (and end) an
        # active run, changing the run's status and end time.
        return Model.log(
            artifact_path=None,
            flavor=mlflow.pyfunc,
            flavor_name="pyfunc.ModelFromCode",
            name="encoder",
            python_model=str(Path(__file__).resolve()),
            artifacts={"theta": str(Path(theta_path).resolve()), "sizes": str(layers)},
            signature=signature,
            input_example=input_example,
            pip_requirements=["numpy", "mlflow"],
            tags=dict(tags or {}),
            step=int(step),
            run_id=run_id,
        )
