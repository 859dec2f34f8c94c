"""Dataset store, ASR manifests, versioning and feature extraction."""
