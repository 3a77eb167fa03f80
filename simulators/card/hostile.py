"""A hostile card: the simulated card's answers changed by a stream of bytes (issue #17).

For the kernel's fuzz targets (``fuzz/fuzz_kernel.py`` under atheris, ``tests/fuzz/`` under
hypothesis). One input — any bytes — is a whole scenario, so a fuzzer's input replays
exactly:

* byte 0: the card profile and the interface (:data:`SCENARIOS`); byte 1: the amount
  (:data:`AMOUNTS`); byte 2: what the host does (b1–b3 modulo 5: the simulated issuer,
  unable to go online, approve without tag 91, decline, approve with a 91 of any bytes and
  issuer scripts of any commands), b4 a card read (``EmvKernel.read``) instead of a
  transaction, and the PIN pads (b5–b6 online PIN: an enciphered block, cancelled, timed
  out, no pad; b7–b8 offline PIN: a block of the key's size, of a wrong size, cancelled,
  no pad);
* then, for each answer the card gives, one instruction byte (:class:`Op`, modulo its
  count) and its operands: keep the honest answer, or change its status word, truncate
  it, set one data object's value (emptied, shortened, lengthened, any bytes, or one of
  :data:`KNOWN_VALUES`), cut a value short, drop an object, add one (a tag the kernel
  reads, :data:`CARD_TAGS`), repeat one, replace the whole answer, or flip one byte.

The honest simulated card (:mod:`simulators.card.card`) keeps answering after a change,
so a mutation in the GPO answer still reaches CVM, risk management and GENERATE AC — which
random answers alone rarely do. When the stream runs out every further answer is kept.
A command the simulated card itself cannot digest (the kernel sent data shaped by a
mutated DOL) is answered ``6F00``, as a real card without a precise diagnosis would: the
fuzz targets test the kernel, not the simulator.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.base import EncryptedPin, ResponseApdu
from drivers.errors import PinEntryCancelledError, PinEntryTimeoutError
from etika_errors import EtikaError
from simulators.card.card import EmvCard
from simulators.card.profiles import Interface, get_profile
from simulators.card.reader import SimulatedCardReader
from simulators.card.sim_issuer import SimulatedIssuer
from terminal.emv import tlv
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.cvm import OnlinePinRequest
from terminal.emv.kernel import (
    EmvKernel,
    OfflinePinRequest,
    OnlineRequest,
    OnlineResponse,
    TransactionResult,
)
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.profile import load_profile

__all__ = [
    "AMOUNTS",
    "CARD_TAGS",
    "KNOWN_VALUES",
    "SCENARIOS",
    "ByteStream",
    "HostileCardReader",
    "Op",
    "default_config",
    "mutate",
    "reads_only",
    "run_scenario",
]

#: (card profile, interface): every kernel path — contact DDA/CDA/SDA, PSE with a DDF,
#: an SFI 11+ record, two applications; qVSDC, M/Chip and M/Chip with CDCVM contactless.
SCENARIOS: tuple[tuple[str, Interface], ...] = (
    ("visa-credit", Interface.CONTACT),
    ("visa-credit", Interface.CONTACTLESS),
    ("mastercard-debit", Interface.CONTACT),
    ("mastercard-contactless", Interface.CONTACTLESS),
    ("mastercard-mobile", Interface.CONTACTLESS),
    ("bancontact-maestro", Interface.CONTACT),
    ("cb", Interface.CONTACT),
    ("domestic-visa", Interface.CONTACT),
    ("domestic-visa-ddf", Interface.CONTACT),
    ("visa-sfi12", Interface.CONTACT),
    ("visa-expired", Interface.CONTACTLESS),
)
#: Below the contactless floor and CVM limits, around them, above the contact floor limit.
AMOUNTS = (0, 1, 2500, 5000, 6000, 20000, 60000, 150000)
#: Tags the kernel reads from a card: the ones an added object exercises.
CARD_TAGS = (0x82, 0x94, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x92, 0x93, 0x97, 0x9F32, 0x9F46,
             0x9F47, 0x9F48, 0x9F49, 0x9F4A, 0x5A, 0x57, 0x5F24, 0x5F25, 0x5F28, 0x5F34,
             0x9F07, 0x9F08, 0x9F0D, 0x9F0E, 0x9F0F, 0x9F14, 0x9F23, 0x9F42, 0x9F27, 0x9F36,
             0x9F26, 0x9F10, 0x9F4B, 0x9F6C, 0x9F69, 0x9F38, 0x84, 0x87, 0x88, 0x50, 0x61,
             0x4F, 0x9D, 0x9F2D, 0x9F2E, 0x9F2F, 0x9F6B, 0x70, 0x77, 0x80, 0xA5, 0xBF0C)
#: Status words worth trying: T=0 procedure bytes, warnings, the ones the kernel branches on.
STATUS_WORDS = (0x9000, 0x6283, 0x6300, 0x63C0, 0x63C2, 0x6985, 0x6984, 0x6986, 0x6983,
                0x6A81, 0x6A82, 0x6A83, 0x6A88, 0x6D00, 0x6F00, 0x6100, 0x61FF, 0x6C00,
                0x6C10)

#: Values a data object may be set to that random bytes rarely hit: the edge values of
#: one-byte fields, CVM Lists with every condition (amounts X = 10.00, Y = 50.00), DOLs
#: (short, malformed, over 255 bytes, with the TC hash), dates, AFLs, currencies, CTQs,
#: IADs and AIPs that each pick another branch of the kernel.
KNOWN_VALUES = tuple(bytes.fromhex(h) for h in (
    "", "00", "FF", "C0", "80", "40", "ABCD", "0000000000", "FFFFFFFFFF", "0000",
    "000003E800001388" "0206" "4207" "1E08" "1F09" "0103" "4403" "0504" "5E00" "3F00" "0000",
    "000003E800001388" "0406" "4507" "0101" "4102" "1E03",
    "00000000000000000000",
    "9F3704", "DF01FF9F0206", "9F02069F3704", "98149F3704", "9F", "9F0206DF01FA",
    "991231", "000000", "201301", "AABBCC", "491231", "500101",
    "08010100", "08010101", "F8010100", "0801FF00", "58010100",
    "0978", "0504", "0840",
    "8000", "4000", "2000", "1000", "0800", "0080",
    "06011103900000", "06011103A00000", "06011103B00000",
    "FF00", "2000", "0100", "1B80", "3C00", "5C00", "7D00",
))

WHEN = datetime(2026, 11, 22, 10, 30)


class ByteStream:
    """Reads an input front to back; past its end every read gives zeros."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def byte(self) -> int:
        if self.offset >= len(self.data):
            return 0
        self.offset += 1
        return self.data[self.offset - 1]

    def take(self, count: int) -> bytes:
        chunk = self.data[self.offset : self.offset + count]
        self.offset += len(chunk)
        return chunk + bytes(count - len(chunk))


class Op(enum.IntEnum):
    """What to do with one answer (the instruction byte modulo the count)."""

    KEEP = 0
    KEEP_TOO = 1
    KEEP_AS_WELL = 2
    STATUS = 3
    TRUNCATE = 4
    SET_VALUE = 5
    CUT_VALUE = 6
    DROP = 7
    ADD = 8
    REPEAT = 9
    RAW = 10
    FLIP = 11
    SET_KNOWN = 12


# A mutable TLV tree: [tag, value, children or None], rebuilt with tlv.encode.
_Node = list[Any]


def _tree(items: list[tlv.Tlv]) -> list[_Node]:
    return [[i.tag, i.value, _tree(i.children) if i.constructed else None] for i in items]


def _encode(nodes: list[_Node]) -> bytes:
    out = b""
    for tag, value, children in nodes:
        out += tlv.encode(tag, _encode(children) if children is not None else value)
    return out


def _primitives(nodes: list[_Node], into: list[tuple[list[_Node], int]]) -> None:
    for index, node in enumerate(nodes):
        if node[2] is None:
            into.append((nodes, index))
        else:
            _primitives(node[2], into)


def mutate(answer: ResponseApdu, stream: ByteStream) -> ResponseApdu:
    """The answer changed by the next instruction in ``stream`` (see the module docstring)."""
    op = Op(stream.byte() % len(Op))
    data, sw1, sw2 = answer.data, answer.sw1, answer.sw2
    if op in (Op.KEEP, Op.KEEP_TOO, Op.KEEP_AS_WELL):
        return answer
    if op is Op.STATUS:
        sw = STATUS_WORDS[stream.byte() % len(STATUS_WORDS)]
        keep = stream.byte() & 1
        return ResponseApdu(data if keep else b"", sw >> 8, sw & 0xFF)
    if op is Op.TRUNCATE:
        return ResponseApdu(data[: stream.byte() % (len(data) + 1)], sw1, sw2)
    if op is Op.RAW:
        size = stream.byte() | (stream.byte() & 0x03) << 8
        return ResponseApdu(stream.take(size), sw1, sw2)
    if op is Op.FLIP:
        if not data:
            return answer
        position = (stream.byte() << 8 | stream.byte()) % len(data)
        flipped = bytearray(data)
        flipped[position] ^= stream.byte() or 0x01
        return ResponseApdu(bytes(flipped), sw1, sw2)
    try:
        nodes = _tree(tlv.decode(data))
    except tlv.TlvError:
        return answer  # not TLV: the structural changes do not apply
    places: list[tuple[list[_Node], int]] = []
    _primitives(nodes, places)
    if op is Op.ADD:
        tag = CARD_TAGS[stream.byte() % len(CARD_TAGS)]
        value = stream.take(stream.byte())
        inner = nodes[0][2] if nodes and nodes[0][2] is not None else nodes
        inner.insert(stream.byte() % (len(inner) + 1), [tag, value, None])
        return ResponseApdu(_encode(nodes), sw1, sw2)
    if not places:
        return answer
    parent, index = places[stream.byte() % len(places)]
    node = parent[index]
    if op is Op.SET_VALUE:
        node[1] = stream.take(stream.byte())
    elif op is Op.SET_KNOWN:
        node[1] = KNOWN_VALUES[stream.byte() % len(KNOWN_VALUES)]
    elif op is Op.CUT_VALUE:
        node[1] = node[1][: stream.byte() % (len(node[1]) + 1)]
    elif op is Op.DROP:
        del parent[index]
    elif op is Op.REPEAT:
        parent.insert(index, list(node))
    return ResponseApdu(_encode(nodes), sw1, sw2)


class HostileCardReader(SimulatedCardReader):
    """A simulated card whose answers ``stream`` changes, one instruction per answer."""

    def __init__(self, card: EmvCard, stream: ByteStream) -> None:
        super().__init__(card)
        self.stream = stream

    def respond(self, command: bytes) -> ResponseApdu:
        try:
            answer = super().respond(command)
        except (EtikaError, IndexError, KeyError, TypeError, ValueError):
            # The simulated card choked on what a mutated DOL made the kernel send: a real
            # card answers 6F00 then (no precise diagnosis). The kernel's code is not on
            # this stack, so nothing of the kernel's is hidden here.
            answer = ResponseApdu(b"", 0x6F, 0x00)
        return mutate(answer, self.stream)


class _Host:
    """The issuer as ``mode`` says: honest (the simulated issuer), absent, or hostile."""

    def __init__(self, mode: int, profile: Any, stream: ByteStream) -> None:
        self.mode, self.stream = mode, stream
        self.issuer = SimulatedIssuer(profile)

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        if self.mode == 0:
            try:
                return await self.issuer.authorise(request)
            except (EtikaError, IndexError, KeyError, TypeError, ValueError):
                # The simulated issuer's own limits (a mutated ATC or PAN, say); a host
                # that cannot answer is "unable to go online" for the kernel.
                return None
        if self.mode == 1:
            return None
        if self.mode == 2:
            return OnlineResponse(arc=b"00")
        if self.mode == 3:
            return OnlineResponse(arc=b"05")
        iad = self.stream.take(self.stream.byte() % 24)
        return OnlineResponse(arc=b"00", issuer_authentication_data=iad, scripts=self._scripts())

    def _scripts(self) -> bytes:
        """Up to three 71/72 templates, each one 86 command of any bytes (Book 3 §10.10)."""
        out = b""
        for _ in range(self.stream.byte() % 4):
            template = 0x71 if self.stream.byte() & 1 else 0x72
            command = self.stream.take(self.stream.byte() % 20)
            out += tlv.encode(template, tlv.encode(0x86, command))
        return out


def _online_pin(mode: int) -> Callable[[OnlinePinRequest], Awaitable[EncryptedPin]] | None:
    if mode == 3:
        return None

    async def enter(request: OnlinePinRequest) -> EncryptedPin:
        if mode == 1:
            raise PinEntryCancelledError("cancelled", port="fuzz")
        if mode == 2:
            raise PinEntryTimeoutError("timed out", port="fuzz")
        return EncryptedPin(ksn=bytes(10), pin_block=bytes(8), format=0)

    return enter


def _offline_pin(mode: int) -> Callable[[OfflinePinRequest], Awaitable[bytes]] | None:
    if mode == 3:
        return None

    async def encipher(request: OfflinePinRequest) -> bytes:
        if mode == 2:
            raise PinEntryCancelledError("cancelled", port="fuzz")
        return bytes(len(request.modulus) + mode)  # mode 1: one byte too many

    return encipher


def default_config() -> KernelConfig:
    """The kernel configuration of the shipped profile (``firmware-config/default``), with
    a fixed "random" source so that an input replays the same transaction."""
    profile_dir = Path(__file__).resolve().parents[2] / "firmware-config" / "default"
    return replace(kernel_config_from_profile(load_profile(profile_dir)),
                   random_bytes=lambda n: bytes(range(0x31, 0x31 + n)))


async def run_scenario(config: KernelConfig, data: bytes) -> TransactionResult:
    """One whole transaction (or card read) on the hostile card ``data`` describes."""
    stream = ByteStream(data)
    profile_name, interface = SCENARIOS[stream.byte() % len(SCENARIOS)]
    amount = AMOUNTS[stream.byte() % len(AMOUNTS)]
    modes = stream.byte()
    profile = get_profile(profile_name)
    reader = HostileCardReader(EmvCard(profile, interface), stream)
    session = await reader.connect(await reader.wait_for_card())
    kernel = EmvKernel(config, authoriser=_Host((modes & 0x07) % 5, profile, stream),
                       pin_entry=_online_pin(modes >> 4 & 0x03),
                       offline_pin=_offline_pin(modes >> 6 & 0x03))
    contactless = interface is Interface.CONTACTLESS
    if reads_only(data):
        return await kernel.read(session, contactless=contactless)
    txn = TransactionData(amount=amount, currency_numeric=504, when=WHEN)
    return await kernel.transact(session, txn, contactless=contactless)


def reads_only(data: bytes) -> bool:
    """Whether ``data`` reads the card (``EmvKernel.read``, no cryptogram: byte 2 b4)."""
    return len(data) > 2 and bool(data[2] & 0x08)
