"""Building the compose images against a mocked docker client: which base is used, when the local
base is made, what a failed build says, and that unchanged wheel inputs are not built again
(tests/integration/test_compose_live.py builds them for real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import docker.errors
import pytest

from payctl.errors import EnvironmentProblem
from payctl.stack import image_build
from payctl.stack.image_build import ImageBuilder, StepReport, source_root
from payctl.stack.images import (
    BASE_LOCAL,
    BASE_OFFICIAL,
    DEBIAN_SET,
    PLATFORM,
    broker_is_tansu,
    image_for,
    local_images,
)
from payctl.stack.topology import Topology

ROOT = source_root()


def builder(present: set[str], tmp_path: Path) -> tuple[ImageBuilder, mock.MagicMock, list[str]]:
    client = mock.MagicMock()

    def get(tag: str) -> Any:
        if tag not in present:
            raise docker.errors.ImageNotFound(tag)
        return mock.MagicMock()

    client.images.get.side_effect = get
    said: list[str] = []
    return ImageBuilder(client, said.append, root=ROOT, cache=tmp_path), client, said


def test_every_local_image_has_a_dockerfile_taking_the_base_as_an_argument():
    for image in [PLATFORM, *DEBIAN_SET.values()]:
        dockerfile = (ROOT / image.dockerfile_dir / "Dockerfile").read_text()
        assert f"ARG BASE={BASE_OFFICIAL}\nFROM ${{BASE}}\n" in dockerfile, image.folder


def test_the_official_base_is_used_when_here(tmp_path: Path):
    b, client, _ = builder({BASE_OFFICIAL, BASE_LOCAL}, tmp_path)
    assert b.base() == BASE_OFFICIAL
    client.images.pull.assert_not_called()


def test_the_local_base_is_reused_and_never_made_again(tmp_path: Path):
    b, client, _ = builder({BASE_LOCAL}, tmp_path)
    with mock.patch.object(ImageBuilder, "make_local_base") as make:
        assert b.base() == BASE_LOCAL
    make.assert_not_called()
    client.images.pull.assert_not_called()


def test_without_a_registry_the_base_is_made_with_debootstrap(tmp_path: Path):
    b, client, said = builder(set(), tmp_path)
    client.images.pull.side_effect = docker.errors.APIError("Get https://registry-1.docker.io/v2/: dial tcp: "
                                                            "lookup registry-1.docker.io: no such host")
    with mock.patch.object(ImageBuilder, "make_local_base") as make:
        assert b.base() == BASE_LOCAL
    make.assert_called_once_with()
    assert said[0] == f"pulling {BASE_OFFICIAL}"
    assert said[1].startswith(f"cannot pull {BASE_OFFICIAL}") and said[1].endswith("with debootstrap")


def test_a_pullable_official_base_is_pulled(tmp_path: Path):
    b, client, _ = builder(set(), tmp_path)
    with mock.patch.object(ImageBuilder, "make_local_base") as make:
        assert b.base() == BASE_OFFICIAL
    client.images.pull.assert_called_once_with(BASE_OFFICIAL)
    make.assert_not_called()


def test_without_debootstrap_the_error_says_how_to_get_it(tmp_path: Path):
    b, _, _ = builder(set(), tmp_path)
    with mock.patch("shutil.which", return_value=None), mock.patch.object(Path, "exists", return_value=False), \
            pytest.raises(EnvironmentProblem, match="debootstrap is not installed"):
        b.make_local_base()


def test_a_failed_build_names_the_image_and_the_failing_step(tmp_path: Path):
    b, client, said = builder(set(), tmp_path)
    client.api.build.return_value = iter([
        {"stream": "Step 1/4 : ARG BASE=debian:bookworm-slim\n"},
        {"stream": "Step 3/4 : RUN apt-get install -y haproxy\n"},
        {"stream": "E: Unable to locate package haproxy\n"},
        {"error": "The command '/bin/sh -c apt-get install -y haproxy' returned a non-zero code: 100"},
    ])
    with pytest.raises(EnvironmentProblem) as err:
        b.build(DEBIAN_SET["gateway"], BASE_LOCAL)
    assert err.value.message.startswith("building payctl/haproxy:bookworm failed: ")
    assert "Unable to locate package haproxy" in err.value.message and "non-zero code: 100" in err.value.message
    assert "\n" not in err.value.message
    assert said[:2] == [f"building payctl/haproxy:bookworm on {BASE_LOCAL}",
                        "payctl/haproxy:bookworm: Step 1/4 : ARG BASE=debian:bookworm-slim"]
    assert client.api.build.call_args.kwargs["buildargs"] == {"BASE": BASE_LOCAL}


def test_build_progress_shows_the_steps_that_run_and_counts_the_cached_ones():
    said: list[str] = []
    report = StepReport("payctl/platform:bookworm", said.append)
    for line in ["Step 1/3 : ARG BASE=debian:bookworm-slim", "Step 2/3 : FROM ${BASE}", "---> b10e5f88066a",
                 "Step 3/3 : RUN apt-get update && apt-get install -y --no-install-recommends python3 "
                 "python3-venv libmariadb3", "---> Using cache", "---> 0123456789ab"]:
        report.line(line)
    report.done()
    assert said == ["payctl/platform:bookworm: Step 1/3 : ARG BASE=debian:bookworm-slim",
                    "payctl/platform:bookworm: Step 2/3 : FROM ${BASE}",
                    "payctl/platform:bookworm: built (1 of 3 steps from the cache)"]
    assert all(len(line) < 120 for line in said)


def test_unchanged_wheel_inputs_are_not_built_again(tmp_path: Path):
    b, _, said = builder(set(), tmp_path)

    def fake_pip(_self: ImageBuilder, target: Path, args: list[str], key: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        (target / ".stamp").write_text(key)

    with mock.patch.object(ImageBuilder, "_pip_into", side_effect=fake_pip, autospec=True) as pip:
        first = b._platform_context(ROOT / PLATFORM.dockerfile_dir)
        assert pip.call_count == 2  # the dependencies' wheelhouse, payctl's own wheel
        again = b._platform_context(ROOT / PLATFORM.dockerfile_dir)
        assert pip.call_count == 2 and again == first
    assert (first / "Dockerfile").read_text() == (ROOT / PLATFORM.dockerfile_dir / "Dockerfile").read_text()
    assert said == ["building the wheelhouse: pip wheel (21 pinned requirements)", "building payctl's wheel"]


def test_the_source_digest_follows_contents_not_bytecode(tmp_path: Path):
    (tmp_path / "payctl").mkdir()
    (tmp_path / "payctl" / "a.py").write_text("x = 1\n")
    before = image_build._tree_hash(tmp_path, ("payctl",))
    (tmp_path / "payctl" / "__pycache__").mkdir()
    (tmp_path / "payctl" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert image_build._tree_hash(tmp_path, ("payctl",)) == before
    (tmp_path / "payctl" / "a.py").write_text("x = 2\n")
    assert image_build._tree_hash(tmp_path, ("payctl",)) != before


def test_the_image_sets():
    debian, upstream = Topology(), Topology(compose_images="upstream")
    assert image_for(debian, "db") == "payctl/mariadb:bookworm" and image_for(upstream, "db") == "mariadb:10.11"
    assert image_for(debian, "ingest") == image_for(upstream, "ingest") == PLATFORM.tag
    assert broker_is_tansu(debian) and not broker_is_tansu(upstream)
    assert not broker_is_tansu(Topology(bootstrap_servers="broker:9092"))
    assert local_images(upstream, {"db", "ingest", "kafka"}) == [PLATFORM]
    assert local_images(debian, {"db"}) == [DEBIAN_SET["db"]]
