"""Fixtures shared by the whole suite, and how it is spread over pytest-xdist's workers.

Fixtures that start a real component live in ``tests/fixtures/<component>.py`` and are
loaded here as plugins, so that ``tests/integration`` and the package tests share them.

``make test`` runs the suite on two workers (``-n auto --dist loadgroup``, at most
:data:`MAX_WORKERS`); a plain ``pytest`` runs it in one process. Each worker is its own
session: its own SoftHSM2 token and test PKI (in its own tmp dir), its own Mosquitto per
test on free ports, its own PostgreSQL schema per test. pcscd is the exception, one per machine: every test that reaches it goes to one
worker (the xdist group ``pcscd``, tests/fixtures/pcsc.py), which holds the machine-wide
lock for its session while the other worker runs the rest.
"""

from __future__ import annotations

import os
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
#: More workers than this buy little (pcscd's tests run on one of them) and crowd a
#: shared machine; CI has two cores.
MAX_WORKERS = 2


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: a run without xdist ignores it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may use, at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


#: Longer string or bytes parameters get a short test id (:func:`pytest_make_parametrize_id`).
LONG_ID = 100


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A long string or bytes parameter (a JSON body, a PEM key, a megabyte buffer) is named
    by its argument and length, not its text.

    pytest-xdist's workers must collect the same test ids: a value made at import (a fresh
    key, a UUID) would differ between them and stop the run; and a megabyte id is carried
    in every report. Short values keep pytest's own id.
    """
    if isinstance(val, (str, bytes)) and len(val) > LONG_ID:
        return f"{argname}-{len(val)}{'B' if isinstance(val, bytes) else 'c'}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the slow tests first.

    A stable sort, so the order is otherwise unchanged (and the same on every worker, as
    xdist requires): xdist hands out work in this order, and a long test started last would
    keep one worker busy after the other has finished.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
