"""Topology (the one source of truth), generated configs, and the backends that run the stack."""
