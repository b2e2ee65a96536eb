"""Packaging: what a non-editable install ships and finds."""
