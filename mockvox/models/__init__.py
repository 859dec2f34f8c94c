"""Assembled GPT-SoVITS networks (no Lightning / MLflow imports)."""
