"""Which image runs each compose service (pure: names only; image_build.py builds them).

Two sets, chosen by the topology's `compose_images`:
- "debian" (default): every image is built on this machine from Debian bookworm's packages
  (MariaDB, HAProxy, Prometheus, Python 3.11) plus, for the broker, the tansu binary the local
  backend runs. The Dockerfiles take `ARG BASE` (default the official debian:bookworm-slim); with no
  registry reachable payctl builds them on a base it makes itself (debootstrap → `docker import`).
  No registry is needed at all.
- "upstream": the official images from Docker Hub (MariaDB, Apache Kafka, HAProxy, Prometheus, and
  Grafana, which Debian does not package); only the platform image is built here. Needs a registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from payctl.stack.topology import Topology

BASE_OFFICIAL = "debian:bookworm-slim"
BASE_LOCAL = "payctl/base:bookworm"
IMAGES_DIR = PurePosixPath("platform/images")


@dataclass(frozen=True)
class LocalImage:
    """An image built here: its tag and its folder under platform/images (Dockerfile and files)."""

    tag: str
    folder: str

    @property
    def dockerfile_dir(self) -> PurePosixPath:
        return IMAGES_DIR / self.folder


PLATFORM = LocalImage("payctl/platform:bookworm", "platform")
DEBIAN_SET: dict[str, LocalImage] = {
    "db": LocalImage("payctl/mariadb:bookworm", "mariadb"),
    "kafka": LocalImage("payctl/tansu:bookworm", "tansu"),
    "gateway": LocalImage("payctl/haproxy:bookworm", "haproxy"),
    "prometheus": LocalImage("payctl/prometheus:bookworm", "prometheus"),
}
UPSTREAM_SET: dict[str, str] = {
    "db": "mariadb:10.11", "kafka": "apache/kafka:3.9.0", "gateway": "haproxy:2.6",
    "prometheus": "prom/prometheus:v2.53.0", "grafana": "grafana/grafana:11.1.0",
}
# service kinds the platform image runs
PLATFORM_KINDS = frozenset({"vm", "schema", "ingest", "relay", "ledger", "refund", "settlement", "console"})


def image_for(topo: Topology, kind: str) -> str:
    """The image of a service of `kind` (a VM's holder container is "vm", the schema job "schema")."""
    if kind in PLATFORM_KINDS:
        return PLATFORM.tag
    if topo.compose_images == "upstream":
        return UPSTREAM_SET[kind]
    return DEBIAN_SET[kind].tag


def broker_is_tansu(topo: Topology) -> bool:
    """The compose stack's own broker is tansu in the Debian set, Apache Kafka upstream."""
    return topo.bootstrap_servers is None and topo.compose_images == "debian"


def local_images(topo: Topology, kinds: set[str]) -> list[LocalImage]:
    """The images to build here for services of these kinds, the platform image first."""
    found = [PLATFORM] if kinds & PLATFORM_KINDS else []
    if topo.compose_images == "debian":
        found += [image for kind, image in DEBIAN_SET.items() if kind in kinds]
    return found
