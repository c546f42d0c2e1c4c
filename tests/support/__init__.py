"""Helpers for the project's own tests (test servers and the like)."""
