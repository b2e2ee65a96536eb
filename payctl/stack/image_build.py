"""Building the compose stack's images here, with the docker SDK and no registry.

- The base: the official debian:bookworm-slim when it is here or can be pulled; else
  payctl/base:bookworm, made once with `debootstrap --variant=minbase bookworm` and `docker import`
  (kept: never made again while the image exists).
- Each image of images.py from its folder under platform/images, `BASE` passed as a build arg.
  Docker's layer cache makes a rebuild of unchanged inputs take seconds.
- The platform image's context is prepared in the cache folder: a wheelhouse of the pinned
  dependencies (`pip wheel`, made again only when the pins change) and payctl's own wheel (made
  again only when its sources change, so an unchanged checkout reuses every layer).
The Python packages are built by the host's interpreter, which must be 3.11 like Debian bookworm's."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import payctl
from payctl.errors import EnvironmentProblem
from payctl.stack.binaries import Binaries
from payctl.stack.images import BASE_LOCAL, BASE_OFFICIAL, IMAGES_DIR, PLATFORM, LocalImage

Progress = Callable[[str], None]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What the official image lists (deb822), written into the base made with debootstrap.
DEBIAN_SOURCES = """Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# payctl's own wheel is built from these (the package list in pyproject.toml maps them)
WHEEL_SOURCES = ("pyproject.toml", "README.md", "payctl", "platform/payflow", "scenarios")
# a fixed time in the wheel's entries: the same sources give the same bytes, so Docker's cache holds
WHEEL_EPOCH = "1700000000"


def source_root() -> Path:
    """The checkout payctl runs from; the images build from its platform/images and sources."""
    root = Path(payctl.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / IMAGES_DIR).is_dir():
        raise EnvironmentProblem(f"the compose backend builds its images from a payctl checkout ({IMAGES_DIR} "
                                 f"is not beside {root / 'payctl'})", "run payctl from a checkout (./run install)")
    return root


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "payctl" / "images"


def mirror() -> str:
    return os.environ.get("PAYCTL_DEBIAN_MIRROR", DEFAULT_MIRROR)


class ImageBuilder:
    def __init__(self, client: Any, progress: Progress, root: Path | None = None, cache: Path | None = None) -> None:
        self.client = client
        self.progress = progress
        self.root = root or source_root()
        self.cache = cache or cache_dir()

    def ensure(self, images: list[LocalImage]) -> None:
        """Build `images` (Docker's cache makes unchanged ones quick)."""
        if not images:
            return
        base = self.base()
        for image in images:
            self.build(image, base)

    # -- the base ------------------------------------------------------------------------------
    def present(self, tag: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    def base(self) -> str:
        for tag in (BASE_OFFICIAL, BASE_LOCAL):
            if self.present(tag):
                return tag
        self.progress(f"pulling {BASE_OFFICIAL}")
        try:
            self.client.images.pull(BASE_OFFICIAL)
            return BASE_OFFICIAL
        except Exception as exc:
            reason = str(getattr(exc, "explanation", None) or exc).splitlines()[0][:160]
            self.progress(f"cannot pull {BASE_OFFICIAL} ({reason}): making {BASE_LOCAL} with debootstrap")
        self.make_local_base()
        return BASE_LOCAL

    def make_local_base(self) -> None:
        debootstrap = shutil.which("debootstrap") or next(
            (str(p) for p in (Path("/usr/sbin/debootstrap"),) if p.exists()), None)
        if debootstrap is None:
            raise EnvironmentProblem(f"no registry answers and debootstrap is not installed to make {BASE_LOCAL}",
                                     "apt-get install debootstrap (./run install does), or give Docker a registry")
        if os.geteuid() != 0:
            raise EnvironmentProblem(f"making {BASE_LOCAL} with debootstrap needs root",
                                     "run `payctl up --backend compose` once as root, or give Docker a registry")
        self.cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="base-", dir=self.cache))
        rootfs = work / "rootfs"
        try:
            self._debootstrap(debootstrap, rootfs)
            (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
            (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES.format(mirror=mirror()))
            for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / leftovers).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            self.progress(f"importing {BASE_LOCAL} (docker import)")
            tarball = work / "rootfs.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True, capture_output=True)
            repository, tag = BASE_LOCAL.split(":")
            self.client.api.import_image(src=str(tarball), repository=repository, tag=tag,
                                         changes=['CMD ["bash"]'])
        except subprocess.CalledProcessError as exc:
            raise EnvironmentProblem(f"making {BASE_LOCAL} failed: {_tail(exc.stderr)}") from exc
        finally:
            _unmount_below(rootfs)
            shutil.rmtree(work, ignore_errors=True)
        self.progress(f"{BASE_LOCAL} made")

    def _debootstrap(self, debootstrap: str, rootfs: Path) -> None:
        cmd = [debootstrap, "--variant=minbase", "bookworm", str(rootfs), mirror()]
        self.progress(f"debootstrap --variant=minbase bookworm ({mirror()})")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        lines: list[str] = []
        stages: set[str] = set()
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            # one progress line per stage (Retrieving, Validating, Extracting, Installing, …)
            words = line.split()
            if len(words) > 1 and words[0] == "I:" and words[1] not in stages:
                stages.add(words[1])
                self.progress(f"debootstrap: {line[3:]}")
        if proc.wait() != 0:
            raise EnvironmentProblem(f"debootstrap failed (exit {proc.returncode}): {_tail(chr(10).join(lines))}",
                                     f"check that {mirror()} is reachable (PAYCTL_DEBIAN_MIRROR names another)")

    # -- one image -----------------------------------------------------------------------------
    def build(self, image: LocalImage, base: str) -> None:
        with self._context(image) as context:
            self.progress(f"building {image.tag} on {base}")
            recent: list[str] = []
            steps = StepReport(image.tag, self.progress)
            try:
                chunks = self.client.api.build(path=str(context), tag=image.tag, buildargs={"BASE": base},
                                               rm=True, forcerm=True, decode=True, pull=False)
                for chunk in chunks:
                    if "error" in chunk:
                        raise EnvironmentProblem(
                            f"building {image.tag} failed: {_tail(chr(10).join([*recent, str(chunk['error'])]))}",
                            f"its Dockerfile is {self.root / image.dockerfile_dir / 'Dockerfile'}")
                    for line in str(chunk.get("stream", "")).splitlines():
                        if line.strip():
                            recent = [*recent[-8:], line.strip()]
                            steps.line(line.strip())
            except EnvironmentProblem:
                raise
            except Exception as exc:
                raise EnvironmentProblem(f"building {image.tag} failed: {str(exc).splitlines()[0][:300]}") from exc
            steps.done()

    @contextmanager
    def _context(self, image: LocalImage) -> Iterator[Path]:
        folder = self.root / image.dockerfile_dir
        if image == PLATFORM:
            yield self._platform_context(folder)
        elif image.folder == "tansu":
            with tempfile.TemporaryDirectory(prefix="tansu-") as tmp:
                context = Path(tmp)
                shutil.copy2(folder / "Dockerfile", context / "Dockerfile")
                shutil.copy2(Binaries.discover().require("tansu"), context / "tansu")
                yield context
        else:
            yield folder

    # -- the platform image's context ----------------------------------------------------------
    def _platform_context(self, folder: Path) -> Path:
        if sys.version_info[:2] != (3, 11):
            raise EnvironmentProblem("the platform image runs Debian bookworm's Python 3.11; its wheels must be "
                                     f"built by a 3.11 interpreter, not {sys.version.split()[0]}",
                                     "run payctl from a Python 3.11 venv (./run install makes one)")
        context = self.cache / "platform"
        context.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / "Dockerfile", context / "Dockerfile")
        self._dependency_wheels(context / "wheels" / "deps")
        self._payctl_wheel(context / "wheels" / "payctl")
        return context

    def _dependency_wheels(self, target: Path) -> None:
        pins: list[str] = tomllib.loads((self.root / "pyproject.toml").read_text())["project"]["dependencies"]
        key = hashlib.sha256("\n".join(pins).encode()).hexdigest()
        if _stamp(target) == key:
            return
        self.progress(f"building the wheelhouse: pip wheel ({len(pins)} pinned requirements)")
        self._pip_into(target, ["--wheel-dir", "{out}", *pins], key)

    def _payctl_wheel(self, target: Path) -> None:
        key = _tree_hash(self.root, WHEEL_SOURCES)
        if _stamp(target) == key:
            return
        self.progress("building payctl's wheel")
        with tempfile.TemporaryDirectory(prefix="payctl-src-") as tmp:
            for name in WHEEL_SOURCES:
                source = self.root / name
                if source.is_dir():
                    shutil.copytree(source, Path(tmp) / name,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
                elif source.is_file():
                    shutil.copy2(source, Path(tmp) / name)
            self._pip_into(target, ["--no-deps", "--wheel-dir", "{out}", tmp], key)

    def _pip_into(self, target: Path, args: list[str], key: str) -> None:
        """`pip wheel` into a fresh folder, which then replaces `target` (stamped with `key`)."""
        fresh = target.with_name(target.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
               *[a.replace("{out}", str(fresh)) for a in args]]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                                env={**os.environ, "SOURCE_DATE_EPOCH": WHEEL_EPOCH})
        if result.returncode != 0:
            shutil.rmtree(fresh, ignore_errors=True)
            raise EnvironmentProblem(f"pip wheel failed: {_tail(result.stderr)}",
                                     "the wheels come from your package index (PyPI): check that pip reaches it")
        (fresh / ".stamp").write_text(key)
        shutil.rmtree(target, ignore_errors=True)
        fresh.rename(target)


class StepReport:
    """A build's progress lines: each step that runs (one line, shortened), none for the steps
    Docker's cache answers, then how many were cached. Fed the builder's output line by line."""

    def __init__(self, tag: str, progress: Progress) -> None:
        self.tag = tag
        self.progress = progress
        self.pending: str | None = None
        self.steps = 0
        self.cached = 0

    def line(self, line: str) -> None:
        if line.startswith("Step "):
            self._flush()
            self.steps += 1
            self.pending = line
        elif line.startswith("---> Using cache"):
            self.cached += 1
            self.pending = None
        else:
            self._flush()

    def _flush(self) -> None:
        if self.pending is not None:
            text = self.pending if len(self.pending) <= 72 else self.pending[:71] + "…"
            self.progress(f"{self.tag}: {text}")
            self.pending = None

    def done(self) -> None:
        self._flush()
        self.progress(f"{self.tag}: built ({self.cached} of {self.steps} steps from the cache)")


def _stamp(folder: Path) -> str | None:
    try:
        return (folder / ".stamp").read_text()
    except OSError:
        return None


def _tree_hash(root: Path, names: tuple[str, ...]) -> str:
    """A digest of every file under `names` (paths and contents; caches and bytecode left out)."""
    digest = hashlib.sha256()
    for name in names:
        top = root / name
        files = sorted(top.rglob("*")) if top.is_dir() else [top] if top.is_file() else []
        for path in files:
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc" \
                    or any(part.endswith(".egg-info") for part in path.parts):
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _unmount_below(path: Path) -> None:
    """Unmount whatever an interrupted debootstrap left mounted inside `path` (deepest first), so
    removing the folder never reaches into /proc or /sys."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    prefix = str(path.resolve()) + "/"
    for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _tail(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-limit:] or "(no output)"
