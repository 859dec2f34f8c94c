"""Litestar REST API."""
