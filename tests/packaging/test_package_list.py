"""pyproject.toml lists its packages by hand (scenarios/ ships as `payctl.scenarios`): every package
folder in the checkout must be in that list, and every listed package must exist."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _package_folders() -> dict[str, Path]:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {name: ROOT / folder for name, folder in tool["package-dir"].items()}
    roots.setdefault("payctl", ROOT / "payctl")
    found: dict[str, Path] = {}
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            found[".".join((name, *rel))] = init.parent
    return found


def test_every_package_folder_is_listed_in_pyproject():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    missing = sorted(set(_package_folders()) - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def test_every_listed_package_exists():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {name: ROOT / folder for name, folder in tool["package-dir"].items()}

    def folder(package: str) -> Path:
        for prefix in sorted(roots, key=len, reverse=True):
            if package == prefix or package.startswith(prefix + "."):
                return roots[prefix].joinpath(*package[len(prefix):].split(".")[1:])
        return ROOT.joinpath(*package.split("."))

    absent = [p for p in tool["packages"] if not folder(p).is_dir()]
    assert not absent, absent
