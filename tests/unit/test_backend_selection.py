"""One place picks the backend: the `--backend` option, else the topology's `backend`."""

from __future__ import annotations

import pytest

from payctl.errors import UsageError
from payctl.stack.backend import backend_for
from payctl.stack.topology import Topology


def test_the_topology_names_the_backend_and_the_option_overrides_it(tmp_path) -> None:
    local = Topology(state_dir=tmp_path)
    compose = Topology(state_dir=tmp_path, backend="compose")
    assert backend_for(local).name == "local"
    assert backend_for(compose).name == "compose"
    assert backend_for(compose, "local").name == "local"
    assert backend_for(local, "compose").name == "compose"


def test_an_unknown_backend_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="unknown backend 'k8s'"):
        backend_for(Topology(state_dir=tmp_path), "k8s")
