"""MockVox: voice cloning on GPT-SoVITS v2/v4."""

import os

# Libraries report usage to their vendors unless told not to; MockVox does not phone home (a user may opt back in).
for _name in ("MLFLOW_DISABLE_TELEMETRY", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_name, "true")

__version__ = "0.1.0"
