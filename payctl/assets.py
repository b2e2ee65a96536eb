"""Files shipped with payctl as package data: the k6 scenarios and the chaos experiments.

The top-level `scenarios/` folder is installed as the package `payctl.scenarios` (pyproject.toml),
so an installed payctl finds them wherever it runs from; an editable install maps the package to
the checkout's folder. k6 and the YAML loader need real paths, so the folder must be on disk."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from payctl.errors import EnvironmentProblem

PACKAGE = "payctl.scenarios"


def scenarios_dir() -> Path:
    """The installed `scenarios/` folder as a real directory."""
    try:
        root = resources.files(PACKAGE)
    except ModuleNotFoundError as exc:
        raise EnvironmentProblem(f"payctl's package data '{PACKAGE}' is not installed",
                                 "reinstall payctl (pip install .) from a complete checkout") from exc
    if not isinstance(root, Path) or not root.is_dir():
        raise EnvironmentProblem(f"payctl's scenarios are not a folder on disk ({root})",
                                 "install payctl from a wheel or a checkout, not from a zip")
    return root


def k6_dir() -> Path:
    """The k6 scripts (`scenarios/k6/*.js`)."""
    return scenarios_dir() / "k6"


def chaos_dir() -> Path:
    """The chaos experiments (`scenarios/chaos/*.yaml`)."""
    return scenarios_dir() / "chaos"
