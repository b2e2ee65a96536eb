"""payctl: stand up, break, load and judge the sharded payment platform."""

from payctl.errors import EnvironmentProblem, PayctlError, UsageError

__all__ = ["EnvironmentProblem", "PayctlError", "UsageError"]
__version__ = "0.1.0"
