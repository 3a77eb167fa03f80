"""The platform's public key, read by a separate ``etika platform key`` process.

The platform signs with a key in its PKCS#11 token under its data dir. A test that runs
``etika platform serve`` in a subprocess reads the key the same way, from another process:
this pytest process may have loaded SoftHSM2 on another token directory already (SoftHSM2
reads ``SOFTHSM2_CONF`` once), so an in-process call could see another token.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def platform_public_key(data_dir: Path) -> str:
    """``etika --data-dir DATA_DIR platform key``: the PEM (the key is made on first use)."""
    result = subprocess.run(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(data_dir), "platform",
         "key"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"etika platform key failed: {result.stderr}")
    return result.stdout
