"""Small shells shared by the worker processes."""
