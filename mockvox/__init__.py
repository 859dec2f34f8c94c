"""MockVox: voice cloning on GPT-SoVITS v2/v4."""

import os

# Libraries report usage to their vendors unless told not to; MockVox does not phone home (a user may opt back in).
for _name in ("MLFLOW_DISABLE_TELEMETRY", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_name, "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its own handler would print store migrations at INFO

__version__ = "0.1.0"
