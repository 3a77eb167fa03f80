"""The counter's Pilot tests run the app over the in-memory services (ui.fake)."""

from __future__ import annotations

import pytest

from ui.app import CounterApp, build_app
from ui.fake import FIXED_NOW, FakeCounterServices

SIZE = (120, 34)


def counter_app(fake: FakeCounterServices, locale: str | None = None) -> CounterApp:
    return build_app(fake, locale=locale, clock=lambda: FIXED_NOW, status_every_s=0,
                     reader_every_s=0)


@pytest.fixture
def fake() -> FakeCounterServices:
    return FakeCounterServices()
