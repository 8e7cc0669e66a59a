"""Fixtures shared across test folders, registered as pytest plugins by tests/conftest.py."""
