"""Whatever the card answers, the kernel ends with a result or one of its own errors."""

from __future__ import annotations

import asyncio
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import ResponseApdu
from terminal.emv.config import TransactionData
from terminal.emv.errors import EmvError
from terminal.emv.kernel import EmvKernel, TransactionResult

from .cardkit import App, KitCard, KitReader, kernel_config

CONFIG = kernel_config()


class CorruptingReader(KitReader):
    """Replaces the card's answer to the n-th command with garbage, or truncates it."""

    def __init__(self, card: KitCard, index: int, garbage: bytes, sw: int, truncate: bool):
        super().__init__(card)
        self.index, self.garbage, self.sw, self.truncate = index, garbage, sw, truncate
        self.count = 0

    def respond(self, command: bytes) -> ResponseApdu:
        try:
            answer = super().respond(command)
        except (IndexError, ValueError):
            # A corrupted earlier answer (a garbled PDOL, say) can make the kernel send data
            # the test card cannot parse; a real card answers 6F00 (no precise diagnosis).
            answer = ResponseApdu(b"", 0x6F, 0x00)
        self.count += 1
        if self.count - 1 != self.index:
            return answer
        if self.truncate and answer.data:
            return ResponseApdu(answer.data[: len(answer.data) // 2], answer.sw1, answer.sw2)
        return ResponseApdu(self.garbage, self.sw >> 8, self.sw & 0xFF)


async def _run(reader: CorruptingReader, contactless: bool) -> TransactionResult:
    session = await reader.connect(await reader.wait_for_card())
    data = TransactionData(amount=2500, currency_numeric=504, when=datetime(2026, 11, 22))
    return await EmvKernel(CONFIG).transact(session, data, contactless=contactless)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, 14),
    garbage=st.binary(max_size=40),
    sw=st.sampled_from([0x9000, 0x6A82, 0x6985, 0x6F00, 0x6283, 0x6A81, 0x6300, 0x61FF]),
    truncate=st.booleans(),
    oda=st.sampled_from(["sda", "dda", "cda"]),
    contactless=st.booleans(),
)
def test_corrupted_answers_never_crash(index: int, garbage: bytes, sw: int, truncate: bool,
                                       oda: str, contactless: bool) -> None:
    """Random bytes, wrong status words and truncated TLV give an EmvError or a result."""
    app = App(oda="dda" if contactless else oda, qvsdc=contactless)
    if contactless:
        from .cardkit import QVSDC_PDOL

        app.pdol = QVSDC_PDOL
    reader = CorruptingReader(KitCard(app), index, garbage, sw, truncate)
    try:
        result = asyncio.run(_run(reader, contactless))
    except EmvError:
        return
    assert result.cryptogram in ("TC", "ARQC", "AAC")
