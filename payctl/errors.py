"""One exception family; the CLI prints the message on one line and exits with the code."""

from __future__ import annotations


class PayctlError(Exception):
    """A problem the user can fix; `hint` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(PayctlError):
    """Bad arguments or configuration."""


class EnvironmentProblem(PayctlError):
    """Something this machine lacks or a service that would not start."""


class CheckFailed(PayctlError):
    """A check ran and failed (grade, invariant, threshold): exit code 1."""

    exit_code = 1
