"""MockVox: voice cloning on GPT-SoVITS v2/v4."""

__version__ = "0.1.0"
