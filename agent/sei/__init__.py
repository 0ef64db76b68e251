"""Harness SEI: the payload model, and the one client that knows its paths."""
