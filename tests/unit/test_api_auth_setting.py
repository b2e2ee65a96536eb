"""`api_auth = "off"`: refused beyond loopback; the gateway is the ingest's trusted proxy."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from payctl.errors import UsageError
from payctl.stack.topology import Topology
from payflow.config import Settings


def test_auth_off_is_refused_unless_every_listener_is_loopback():
    Topology(settings=Settings(api_auth="off")).check_api_auth()  # loopback: allowed
    Topology(shared_host=IPv4Address("10.1.2.3")).check_api_auth()  # auth on: anything goes
    for topo in (Topology(settings=Settings(api_auth="off"), shared_host=IPv4Address("10.1.2.3")),
                 Topology(settings=Settings(api_auth="off"), isolation="netns")):
        with pytest.raises(UsageError) as refused:
            topo.check_api_auth()
        assert "api_auth" in str(refused.value) and "\n" not in str(refused.value)


def test_the_gateway_is_a_trusted_proxy_of_the_ingest():
    assert "10.203.0.2" in Topology(isolation="netns").platform_settings(True).auth_trusted_proxies
    mine = Topology(settings=Settings(auth_trusted_proxies=["10.0.0.1"]), isolation="netns")
    assert mine.platform_settings(True).auth_trusted_proxies == ["10.0.0.1"]


def test_status_says_when_authentication_is_off(capsys):
    from payctl.cli.stack_cmds import AUTH_OFF, render_status

    render_status([], "off")
    assert "API authentication: OFF" in capsys.readouterr().out
    render_status([], "on")
    assert "API authentication" not in capsys.readouterr().out
    assert AUTH_OFF.startswith("API authentication: OFF")
