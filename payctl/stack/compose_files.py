"""Writing and checking the rendered compose files (the I/O around compose_render).

Layout under the output folder (the checkout by default): `compose.yml`, and its config files in
`platform/compose/`. Each file is replaced atomically (temporary file + rename in its folder), and
only when its text changed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from payctl.atomic import write_atomic
from payctl.errors import EnvironmentProblem, UsageError
from payctl.stack.compose_render import ComposeFiles


@dataclass(frozen=True)
class Written:
    path: PurePosixPath  # relative to the output folder
    changed: bool


def output_dir(out: Path) -> Path:
    """`out` as an absolute folder; UsageError naming it when it is not an existing folder."""
    if not out.exists():
        raise UsageError(f"--out {out} does not exist", "create the folder first, or leave --out out for the checkout")
    if not out.is_dir():
        raise UsageError(f"--out {out} is not a folder", "give the folder compose.yml should go to")
    return out.resolve()


def stale(files: ComposeFiles, out: Path) -> list[PurePosixPath]:
    """The files under `out` that are missing or differ from what the topology renders."""
    found = []
    for rendered in files.files():
        target = out / rendered.path
        try:
            current = target.read_text()
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            current = None
        if current != rendered.text:
            found.append(rendered.path)
    return found


def write(files: ComposeFiles, out: Path) -> list[Written]:
    """Write every file under `out` (created folders included); unchanged files are left alone."""
    changed = set(stale(files, out))
    written = []
    for rendered in files.files():
        if rendered.path in changed:
            _write_atomic(out / rendered.path, rendered.text)
        written.append(Written(rendered.path, rendered.path in changed))
    return written


def _write_atomic(target: Path, text: str) -> None:
    try:
        write_atomic(target, text)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {target}: {exc.strerror or exc}",
                                 "check the folder's permissions or choose another --out") from exc
