"""Helpers the tests share (data makers, subprocess drivers); fixtures live in tests/conftest.py."""
