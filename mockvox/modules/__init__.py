"""Reusable neural-network blocks of GPT-SoVITS."""
