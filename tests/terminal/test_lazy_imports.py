"""A command imports what it uses: a card read starts without the PSP connectors, the sync,
the platform, the payments or the key store (issue #16 item 11). Checked on ``sys.modules``
in a fresh interpreter after the command ran, never on a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What reading a card or the store does not need. Each would be imported by the services facade or the
# store if they went back to eager imports (the PSP routing pulls httpx and the ISO 8583
# codec, the sync pydantic models, MQTT and the signing keys, the key store PKCS#11).
_NOT_FOR_A_READ = (
    "edge_sync.connectors", "edge_sync.platform", "edge_sync.worker", "edge_sync.mqtt",
    "edge_sync.https", "edge_sync.messages", "edge_sync.signing", "edge_sync.downlink",
    "edge_sync.pop", "terminal.services.psp", "terminal.services.sync",
    "terminal.services.keys", "terminal.services.pop", "terminal.psp_routing",
    "terminal.payments", "terminal.sync_hooks", "hsm", "pkcs11", "httpx", "aiomqtt", "paho",
    "fastapi", "uvicorn", "starlette", "psycopg", "textual",
)


def _modules_after(argv: list[str]) -> tuple[int, set[str]]:
    """Run ``etika argv`` in a fresh interpreter; its exit status and every module loaded."""
    code = (
        "import contextlib, io, json, sys\n"
        "from terminal.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    status = main({argv!r})\n"
        "print(json.dumps({'status': status, 'modules': sorted(sys.modules)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    answer = json.loads(out.stdout.splitlines()[-1])
    return answer["status"], set(answer["modules"])


@pytest.mark.parametrize(
    ("interface",     "extra"),
    [
        ("contact",     []),
        ("contactless", ["--contactless"]),
    ],
)
def test_simulated_card_read_imports_no_psp_sync_nor_platform(
        tmp_path: Path, interface: str, extra: list[str]) -> None:
    """`etika card read --simulated` reads the card without loading the PSP connectors, the
    sync, the platform, the payments or the key store."""
    status, loaded = _modules_after(["--data-dir", str(tmp_path), "card", "read",
                                     "--simulated", "visa-credit", "--json", *extra])
    assert status == 0, interface
    assert "terminal.emv.kernel" in loaded  # the command did run the kernel
    offending = sorted(m for m in loaded
                       if any(m == p or m.startswith(p + ".") for p in _NOT_FOR_A_READ))
    assert offending == []


def test_db_status_imports_no_key_store_psp_nor_sync(tmp_path: Path) -> None:
    """`etika db status` reads the store without loading the key store, the PSP connectors,
    the sync or the platform (issue #16 item 11: it should start in well under a second)."""
    init_status, _ = _modules_after(["--data-dir", str(tmp_path), "db", "init"])
    assert init_status == 0
    status, loaded = _modules_after(["--data-dir", str(tmp_path), "db", "status", "--json"])
    assert status == 0
    assert "terminal.store.status" in loaded  # the command did read the store
    offending = sorted(m for m in loaded
                       if any(m == p or m.startswith(p + ".") for p in _NOT_FOR_A_READ))
    assert offending == []
