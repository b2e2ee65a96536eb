"""payflow: the sharded payment platform that payctl stands up, breaks and judges."""

__version__ = "0.1.0"
