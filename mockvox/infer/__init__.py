"""Synthesis pipeline."""
