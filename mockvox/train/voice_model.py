"""A voice's MLflow model code (models from code): MLflow logs this file and runs it on load; nothing is pickled."""

from mlflow.models import set_model

from mockvox.train.pyfunc import VoicePyfunc

set_model(VoicePyfunc())
