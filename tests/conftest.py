"""Fixtures shared by the whole suite.

Fixtures that start a real component live in ``tests/fixtures/<component>.py`` and are
loaded here as plugins, so that ``tests/integration`` and the package tests share them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.hsm",
    "tests.fixtures.pcsc",
    "tests.fixtures.pinpad",
    "tests.fixtures.mosquitto",
    "tests.fixtures.postgres",
    "tests.fixtures.psp",
    "tests.fixtures.pop",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE_DIR = REPO_ROOT / "firmware-config" / "default"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's profile choice or writes into the checkout's ``var/``."""
    monkeypatch.delenv("ETIKA_PROFILE", raising=False)
    # The CLI derives the token's config from the data dir; an inherited SOFTHSM2_CONF
    # would point a test's subprocess at the developer's token instead.
    monkeypatch.delenv("SOFTHSM2_CONF", raising=False)
    monkeypatch.setenv("ETIKA_DATA_DIR", str(tmp_path / "var"))
    yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A prepared terminal data dir: it exists and holds a store (as `hsm init` leaves it;
    the CLI refuses a data dir without a store)."""
    from terminal.store import Store

    path = tmp_path / "var"
    path.mkdir(exist_ok=True)
    Store.open(path / "etika.db").close()
    return path


@pytest.fixture
def default_profile_dir() -> Path:
    return DEFAULT_PROFILE_DIR
