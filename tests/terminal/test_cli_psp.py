"""``etika psp route`` and ``etika psp echo``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from simulators.psp.acquirer import Acquirer
from simulators.psp.faults import Faults
from simulators.psp.keys import private_key_path
from simulators.psp.server import RestGatewayThread, build_app, free_port
from terminal.cli.main import main


@pytest.mark.parametrize(
    ("args",                                               "route",                           "connectors"),
    [
        (["--network", "domestic"],                            "domestic cards",                  ["cih", "bmce"]),
        (["--network", "visa"],                                "international cards in dirhams",  ["attijariwafa", "cih"]),
        (["--network", "visa", "--currency", "EUR"],           "foreign currency",                ["stripe", "paypal", "attijariwafa"]),
    ],
)
def test_route(capsys: pytest.CaptureFixture[str], args: list[str], route: str,
               connectors: list[str]) -> None:
    """The default profile sends each kind of payment to these connectors, in order."""
    assert main(["psp", "route", *args, "--amount", "25.00", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"route": route, "connectors": connectors}


def test_route_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """No route, a bad amount: one line on stderr, non-zero exit."""
    assert main(["psp", "route", "--network", "amex"]) != 0
    assert main(["psp", "route", "--network", "visa", "--amount", "abc"]) != 0
    err = capsys.readouterr().err
    assert "accepts amex" in err and "not an amount" in err and "Traceback" not in err


def _profile_with_ports(tmp_path: Path, default_profile_dir: Path, ports: dict[str, str]
                        ) -> Path:
    profile = tmp_path / "profile"
    shutil.copytree(default_profile_dir, profile)
    routing = (profile / "routing.toml").read_text()
    for old, new in ports.items():
        routing = re.sub(re.escape(old), new, routing)
    (profile / "routing.toml").write_text(routing)
    return profile


@pytest.mark.network
def test_echo(tmp_path: Path, default_profile_dir: Path,
              capsys: pytest.CaptureFixture[str]) -> None:
    """Echo reports each connector; a reachable one is ok, an unreachable one fails (exit 1)."""
    acquirer = Acquirer(private_key_path("stripe").read_bytes())
    with RestGatewayThread(build_app("stripe", acquirer, Faults())) as gateway:
        profile = _profile_with_ports(tmp_path, default_profile_dir, {
            "http://127.0.0.1:8590": gateway.url,
            "port = 8583": f"port = {free_port()}",
        })
        assert main(["--profile", str(profile), "psp", "echo", "--connector", "stripe",
                     "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["ok"] is True
        assert main(["--profile", str(profile), "psp", "echo", "--connector", "cih"]) == 1
        assert "cannot connect" in capsys.readouterr().out
