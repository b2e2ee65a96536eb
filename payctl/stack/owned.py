"""Which folders payctl may fill and delete: one it made, recognised by its marker file, and never
the root, the home folder, the current folder, the folder holding stack.toml or any ancestor of
them. `up` refuses a state folder that holds someone else's files; `down --purge` refuses a folder
without the marker (a state_dir of "", ".." or "/" in stack.toml must not delete a checkout)."""

from __future__ import annotations

import shutil
from pathlib import Path

from payctl.errors import UsageError

MARKER = ".payctl-state"
MARKER_TEXT = "This folder was made by payctl for one stack's state; `payctl down --purge` deletes it.\n"


# The checkout payctl runs from, when it runs from one (an installed wheel has no pyproject.toml here)
_SOURCE = Path(__file__).resolve().parents[2]
CHECKOUT = _SOURCE if (_SOURCE / "pyproject.toml").is_file() else None


def _protected(anchor: Path | None) -> list[Path]:
    places = [Path("/"), Path.home(), Path.cwd(), *([CHECKOUT] if CHECKOUT else [])]
    if anchor is not None:
        places.append(anchor)
    return [p.resolve() for p in places]


def refusal(folder: Path, anchor: Path | None = None) -> str | None:
    """Why `folder` can never be a state folder (None: it may be). Pure apart from resolving paths."""
    target = folder.resolve()
    for place in _protected(anchor):
        if target == place or place.is_relative_to(target):
            what = "the root folder" if target == Path("/") else (
                "the home folder" if target == Path.home().resolve() else
                f"{place}" if target == place else f"an ancestor of {place}")
            return f"{target} is {what}"
    return None


def claim(folder: Path, anchor: Path | None = None) -> None:
    """Make `folder` a state folder (idempotent): refused where it is protected or already holds
    files that are not payctl's."""
    why = refusal(folder, anchor)
    if why:
        raise UsageError(f"state_dir {folder}: {why}; payctl keeps its state only in a folder of its own",
                         'set state_dir in stack.toml to a new folder, e.g. ".payctl"')
    marker = folder / MARKER
    if folder.exists() and not marker.exists() and any(folder.iterdir()):
        raise UsageError(f"state_dir {folder} already holds files that payctl did not make (no {MARKER})",
                         "choose an empty or new folder for state_dir")
    folder.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(MARKER_TEXT)


def delete(folder: Path, anchor: Path | None = None) -> bool:
    """Delete a state folder payctl made; False when there is nothing to delete."""
    if not folder.exists() and not folder.is_symlink():
        return False
    why = refusal(folder, anchor)
    if why is None and folder.is_symlink():
        why = f"{folder} is a symbolic link"
    if why is None and not (folder / MARKER).is_file():
        why = f"{folder} carries no {MARKER} marker, so payctl did not make it"
    if why:
        raise UsageError(f"refusing to delete {folder}: {why}", "delete it yourself if it really should go")
    shutil.rmtree(folder)
    return True


def output_refusal(folder: Path) -> str | None:
    """Why payctl must not write its report folders or generated files into `folder` (None: it
    may): the root, the home folder, or an ancestor of the current folder or the checkout, where
    they would mix with everything else. The current folder and the checkout themselves are fine
    (`reports/` and `compose.yml` live there)."""
    target = folder.expanduser().resolve()
    if target == Path("/"):
        return "it is the root folder"
    if target == Path.home().resolve():
        return "it is the home folder"
    for place in (Path.cwd().resolve(), *([CHECKOUT] if CHECKOUT else [])):
        if place != target and place.is_relative_to(target):
            return f"it is an ancestor of {place}"
    return None


def check_output(folder: Path, option: str) -> Path:
    why = output_refusal(folder)
    if why:
        raise UsageError(f"{option} {folder}: {why}; payctl writes its reports and files only into a folder of "
                         "their own", "name a folder such as ./reports")
    return folder
