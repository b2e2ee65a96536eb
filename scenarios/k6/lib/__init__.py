"""Helpers shared by the k6 scripts."""
