"""A small, honest EMV card for the kernel's unit tests (not the product simulator).

It answers SELECT (PSE/PPSE/ADF), GPO (format 1 or 2), READ RECORD, GET DATA, INTERNAL
AUTHENTICATE, GENERATE AC (with CDA), EXTERNAL AUTHENTICATE and script commands, with real
RSA signatures from a test CA → issuer → ICC chain (``cryptography`` generates the keys;
signing is the raw ``m^d mod n`` of EMV Book 2 Annex A2.1). Application cryptograms are
an HMAC stand-in: the kernel never verifies them (the issuer does), so any 8 bytes do.
Tests tweak the attributes (ODA method, tampering, blocked, formats, SW faults) and plug
``card.respond`` into :class:`drivers.scripted.ScriptedReader`.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from cryptography.hazmat.primitives.asymmetric import rsa

from drivers.base import ResponseApdu
from drivers.scripted import ScriptedReader
from terminal.emv.config import AidConfig, Capk, ContactlessLimits, KernelConfig
from terminal.emv.dol import parse_dol
from terminal.emv.oda import sha1
from terminal.emv.tlv import Tlv, decode, encode, encode_constructed, flatten

PAN = "4761739001010010"
RID = bytes.fromhex("A000000003")
CAPK_INDEX = 0x99
VISA_AID = bytes.fromhex("A0000000031010")


@dataclass(frozen=True)
class Key:
    n: int
    d: int
    e: int = 3

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    @property
    def modulus(self) -> bytes:
        return self.n.to_bytes(self.size, "big")

    def sign(self, block: bytes) -> bytes:
        assert len(block) == self.size
        return pow(int.from_bytes(block, "big"), self.d, self.n).to_bytes(self.size, "big")


@functools.cache
def key(bits: int) -> Key:
    private = rsa.generate_private_key(public_exponent=3, key_size=bits)
    numbers = private.private_numbers()
    return Key(numbers.public_numbers.n, numbers.d)


def ca_key() -> Key:
    return key(1280)


def issuer_key() -> Key:
    return key(1152)


def icc_key() -> Key:
    return key(1024)


def _signed(k: Key, body: bytes, extra: bytes) -> bytes:
    pad = k.size - len(body) - 22
    assert pad >= 0, "body too long for key"
    body += b"\xbb" * pad  # the hash covers the padding too (Book 2 Table 7/17)
    digest = sha1(body + extra)
    return k.sign(b"\x6a" + body + digest + b"\xbc")


def issuer_certificate(expiry: str = "1235") -> tuple[bytes, bytes]:
    ca, iss = ca_key(), issuer_key()
    room = ca.size - 36
    leftmost, remainder = iss.modulus[:room], iss.modulus[room:]
    body = (b"\x02" + bytes.fromhex(PAN[:6] + "FF") + bytes.fromhex(expiry)
            + b"\x00\x00\x01" + b"\x01\x01" + bytes([iss.size, 1]) + leftmost)
    assert len(body) == ca.size - 22
    digest = sha1(body + remainder + b"\x03")
    return ca.sign(b"\x6a" + body + digest + b"\xbc"), remainder


def icc_certificate(static: bytes, pan: str = PAN, expiry: str = "1235") -> tuple[bytes, bytes]:
    iss, icc = issuer_key(), icc_key()
    room = iss.size - 42
    leftmost, remainder = icc.modulus[:room], icc.modulus[room:]
    pan_field = bytes.fromhex(pan + "F" * (20 - len(pan)))
    body = (b"\x04" + pan_field + bytes.fromhex(expiry) + b"\x00\x00\x01" + b"\x01\x01"
            + bytes([icc.size, 1]) + leftmost)
    digest = sha1(body + remainder + b"\x03" + static)
    return iss.sign(b"\x6a" + body + digest + b"\xbc"), remainder


def signed_static(static: bytes) -> bytes:
    return _signed(issuer_key(), b"\x03\x01\xda\xc1", static)


def dynamic_signature(icc_data: bytes, terminal_data: bytes) -> bytes:
    return _signed(icc_key(), b"\x05\x01" + bytes([len(icc_data)]) + icc_data, terminal_data)


def capk() -> Capk:
    ca = ca_key()
    return Capk(rid=RID, index=CAPK_INDEX, modulus=ca.modulus, exponent=b"\x03",
                expiry=date(2035, 12, 31))


def aid_config(**overrides: object) -> AidConfig:
    values: dict[str, object] = dict(
        aid=VISA_AID, label="VISA", network="visa", application_version=b"\x00\x8c",
        tac_denial=bytes.fromhex("0010000000"), tac_online=bytes.fromhex("DC4004F800"),
        tac_default=bytes.fromhex("DC4000A800"), floor_limit=50000,
        random_selection_threshold=20000, target_percent=0, max_target_percent=0,
        default_tdol=bytes.fromhex("9F02065F2A029A039C0195059F3704"),
        default_ddol=bytes.fromhex("9F3704"), contactless=True,
        contactless_limits=ContactlessLimits(transaction_limit=100000, floor_limit=10000,
                                             cvm_required_limit=5000),
    )
    values.update(overrides)
    return AidConfig(**values)  # type: ignore[arg-type]


def kernel_config(*aids: AidConfig, **overrides: object) -> KernelConfig:
    values: dict[str, object] = dict(
        aids=aids or (aid_config(),), capks=(capk(),),
        random_bytes=lambda n: bytes(range(1, n + 1)),
    )
    values.update(overrides)
    return KernelConfig(**values)  # type: ignore[arg-type]


CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F3501")
CDOL2 = bytes.fromhex("8A029F02069F1A0295055F2A029A039C019F3704")


@dataclass
class App:
    aid: bytes = VISA_AID
    label: str = "VISA CREDIT"
    priority: int = 1
    oda: str = "dda"  # sda | dda | cda | none
    gpo_format: int = 2
    blocked: bool = False
    expiry: str = "351231"
    effective: str = "200101"
    cvm_list: bytes = bytes.fromhex("00000000000000004203" "1E03" "1F03")
    iac_denial: bytes = bytes(5)
    iac_online: bytes = bytes.fromhex("F870FC9800")
    iac_default: bytes = bytes.fromhex("F870FC9800")
    pdol: bytes | None = bytes.fromhex("9F02069F1A025F2A029A039C01")
    cdol2: bytes = CDOL2
    lcol: int | None = 5
    ucol: int | None = 10
    extra_record_tags: list[tuple[int, bytes]] = field(default_factory=list)
    # How the card decides GENERATE AC 1: "follow" the terminal, or force one.
    decide: str = "follow"
    tamper_signature: bool = False
    tamper_static: bool = False
    pan: str = PAN
    aip_extra: int = 0x1C  # CVM supported, TRM, issuer authentication
    #: qVSDC: the GPO answers with the cryptogram (and the fDDA signature when oda="dda").
    qvsdc: bool = False
    #: Put the second ODA record in SFI 11 (counted whole, tag and length included).
    sfi11: bool = False
    #: Status word GPO answers with (6985: conditions of use not satisfied).
    gpo_sw: int = 0x9000
    ctq: bytes = b"\x00\x00"

    @property
    def aip(self) -> bytes:
        bits = {"sda": 0x40, "dda": 0x20, "cda": 0x21, "none": 0x00}[self.oda]
        return bytes([bits | self.aip_extra, 0x00])


class KitCard:
    """One card with ``apps``; ``pse``/``ppse`` say which directories it has."""

    def __init__(self, *apps: App, pse: bool = True, ppse: bool = True,
                 t0: bool = False) -> None:
        self.apps = list(apps) or [App()]
        self.pse = pse
        self.ppse = ppse
        self.t0 = t0
        self.atc = 0x0010
        self.last_online_atc = 0x000C
        self.selected: App | None = None
        self.pdol_data = b""
        self.cdol1_data = b""
        self.ext_auth_sw = 0x9000
        self.records: dict[tuple[int, int], bytes] = {}
        self.pending = b""
        self.commands: list[bytes] = []

    # -- personalisation --------------------------------------------------------------

    def _personalise(self, app: App) -> None:
        r1 = encode_constructed(0x70, [
            (0x5A, bytes.fromhex(app.pan + "F" * (len(app.pan) % 2))),
            (0x5F24, bytes.fromhex(app.expiry)), (0x5F25, bytes.fromhex(app.effective)),
            (0x5F34, b"\x01"), (0x5F28, b"\x05\x04"), (0x9F07, b"\xff\x00"),
            (0x57, bytes.fromhex(app.pan + "D" + app.expiry[:4] + "201000000000F")),
        ])
        r2_items = [(0x8E, app.cvm_list), (0x9F0D, app.iac_default), (0x9F0E, app.iac_denial),
                    (0x9F0F, app.iac_online), (0x9F08, b"\x00\x8c"), (0x9F42, b"\x05\x04"),
                    *app.extra_record_tags]
        if app.lcol is not None and app.ucol is not None:
            r2_items += [(0x9F14, bytes([app.lcol])), (0x9F23, bytes([app.ucol]))]
        r2 = encode_constructed(0x70, r2_items)
        r2_static = r2 if app.sfi11 else decode(r2)[0].value
        static = decode(r1)[0].value + r2_static + app.aip
        cert, rem = issuer_certificate()
        r3_items: list[tuple[int, bytes]] = [(0x8C, CDOL1), (0x8D, app.cdol2),
                                             (0xDF7F, b"\x01\x02")]
        if app.oda != "none":
            r3_items += [(0x8F, bytes([CAPK_INDEX])), (0x90, cert), (0x92, rem),
                         (0x9F32, b"\x03"), (0x9F4A, b"\x82")]
        if app.oda == "sda":
            sig = bytearray(signed_static(static))
            if app.tamper_signature:
                sig[10] ^= 0x01
            r3_items.append((0x93, bytes(sig)))
        elif app.oda in ("dda", "cda"):
            icc_cert, icc_rem = icc_certificate(static)
            r3_items += [(0x9F46, icc_cert), (0x9F47, b"\x03"), (0x9F48, icc_rem),
                         (0x9F49, bytes.fromhex("9F3704"))]
        # Records of at most ~250 bytes, as a card's file system would hold them.
        sfi3: list[bytes] = []
        chunk = b""
        for tag, value in r3_items:
            item = encode(tag, value)
            if chunk and len(chunk) + len(item) > 240:
                sfi3.append(encode(0x70, chunk))
                chunk = b""
            chunk += item
        sfi3.append(encode(0x70, chunk))
        if app.tamper_static:
            r1 = r1.replace(bytes.fromhex("5F340101"), bytes.fromhex("5F340102"))
        self.records = {(1, 1): r1, (11 if app.sfi11 else 2, 1): r2}
        self.records.update({(3, i + 1): rec for i, rec in enumerate(sfi3)})

    @property
    def afl(self) -> bytes:
        last = max(n for (sfi, n) in self.records if sfi == 3)
        second = 11 if (11, 1) in self.records else 2
        return bytes([1 << 3, 1, 1, 1, second << 3, 1, 1, 1, 3 << 3, 1, last, 0])

    # -- answering --------------------------------------------------------------------

    def respond(self, command: bytes) -> ResponseApdu:
        self.commands.append(command)
        data, sw = self._answer(command)
        if self.t0 and sw == 0x9000 and data and command[1] != 0xC0:
            self.pending = data
            return ResponseApdu(b"", 0x61, min(len(data), 255))
        return ResponseApdu(data, sw >> 8, sw & 0xFF)

    def _answer(self, c: bytes) -> tuple[bytes, int]:
        cla, ins, p1, p2 = c[:4]
        body = c[5 : 5 + c[4]] if len(c) > 5 else b""
        if ins == 0xC0:
            data, self.pending = self.pending, b""
            return data, 0x9000
        if ins == 0xA4:
            return self._select(body, p2)
        if ins == 0xB2:
            return self._read(p2 >> 3, p1)
        app = self.selected
        if app is None:
            return b"", 0x6985
        if ins == 0xA8:
            if app.gpo_sw != 0x9000:
                return b"", app.gpo_sw
            self.pdol_data = body[2:]
            if app.qvsdc:
                return self._qvsdc_gpo(app), 0x9000
            if app.gpo_format == 1:
                return encode(0x80, app.aip + self.afl), 0x9000
            return encode_constructed(0x77, [(0x82, app.aip), (0x94, self.afl)]), 0x9000
        if ins == 0xCA:
            tag = (p1 << 8) | p2
            value = {0x9F36: self.atc, 0x9F13: self.last_online_atc}.get(tag)
            if value is None:
                return b"", 0x6A88
            return encode(tag, value.to_bytes(2, "big")), 0x9000
        if ins == 0x88:
            icc_data = b"\x04\x11\x22\x33\x44"
            sig = bytearray(dynamic_signature(icc_data, body))
            if app.tamper_signature:
                sig[5] ^= 0x01
            return encode(0x80, bytes(sig)), 0x9000
        if ins == 0xAE:
            return self._generate_ac(app, p1, body)
        if ins == 0x82:
            return b"", self.ext_auth_sw
        if cla == 0x84:  # issuer script commands (secure messaging)
            return b"", 0x9000
        return b"", 0x6D00

    def _qvsdc_gpo(self, app: App) -> bytes:
        return _qvsdc_answer(self, app)

    def _select(self, name: bytes, p2: int) -> tuple[bytes, int]:
        if name == b"1PAY.SYS.DDF01":
            if not self.pse:
                return b"", 0x6A82
            fci = encode_constructed(0x6F, [(0x84, name), (0xA5, encode(0x88, b"\x0a"))])
            return fci, 0x9000
        if name == b"2PAY.SYS.DDF01":
            if not self.ppse:
                return b"", 0x6A82
            entries = b"".join(
                encode_constructed(0x61, [(0x4F, a.aid), (0x50, a.label.encode()),
                                          (0x87, bytes([a.priority]))])
                for a in self.apps
            )
            return encode_constructed(0x6F, [(0x84, name), (0xA5, encode(0xBF0C, entries))]), \
                0x9000
        matches = [a for a in self.apps if a.aid.startswith(name)]
        if p2 == 0x02 and self.selected in matches:
            matches = matches[matches.index(self.selected) + 1:]
        if not matches:
            return b"", 0x6A82
        app = matches[0]
        self.selected = app
        self._personalise(app)
        a5 = [(0x50, app.label.encode()), (0x87, bytes([app.priority]))]
        if app.pdol is not None:
            a5.append((0x9F38, app.pdol))
        fci = encode_constructed(0x6F, [(0x84, app.aid),
                                        (0xA5, b"".join(encode(t, v) for t, v in a5))])
        return fci, 0x6283 if app.blocked else 0x9000

    def _read(self, sfi: int, number: int) -> tuple[bytes, int]:
        if sfi == 10:  # the PSE directory
            if number > 1:
                return b"", 0x6A83
            entries = [encode_constructed(0x61, [(0x4F, a.aid), (0x50, a.label.encode()),
                                                 (0x87, bytes([a.priority]))])
                       for a in self.apps]
            return encode(0x70, b"".join(entries)), 0x9000
        record = self.records.get((sfi, number))
        if record is None:
            return b"", 0x6A83
        return record, 0x9000

    def _generate_ac(self, app: App, p1: int, body: bytes) -> tuple[bytes, int]:
        first = not self.cdol1_data
        if first:
            self.cdol1_data = body
        asked = p1 & 0xC0
        kind = {"follow": asked, "tc": 0x40, "arqc": 0x80, "aac": 0x00}[app.decide]
        if not first:
            kind = asked
        order = {0x00: 0, 0x80: 1, 0x40: 2}
        if order[kind] > order[asked]:
            kind = asked
        self.atc += 1
        cid = bytes([kind])
        atc = self.atc.to_bytes(2, "big")
        ac = hmac.new(b"card", body + atc, "sha256").digest()[:8]
        iad = bytes.fromhex("06010A03A00000")
        if p1 & 0x10 and kind != 0x00:
            dol, data = (CDOL1, body) if first else (app.cdol2, body)
            pos, un_value = 0, b""
            for tag, length in parse_dol(dol):
                if tag == 0x9F37:
                    un_value = data[pos : pos + length]
                pos += length
            others = encode(0x9F27, cid) + encode(0x9F36, atc) + encode(0x9F10, iad)
            covered = self.pdol_data + self.cdol1_data + (b"" if first else body) + others
            hash_code = sha1(covered)
            icc_data = b"\x04\x11\x22\x33\x44" + cid + ac + hash_code
            sig = bytearray(dynamic_signature(icc_data, un_value))
            if app.tamper_signature:
                sig[5] ^= 0x01
            return encode_constructed(0x77, [(0x9F27, cid), (0x9F36, atc), (0x9F10, iad),
                                             (0x9F4B, bytes(sig))]), 0x9000
        if app.gpo_format == 1:
            return encode(0x80, cid + atc + ac + iad), 0x9000
        return encode_constructed(0x77, [(0x9F27, cid), (0x9F36, atc), (0x9F26, ac),
                                         (0x9F10, iad)]), 0x9000


QVSDC_PDOL = bytes.fromhex("9F66049F02069F37045F2A02")


def _qvsdc_answer(card: KitCard, app: App) -> bytes:
    ttq, amount, un, currency = (card.pdol_data[0:4], card.pdol_data[4:10],
                                 card.pdol_data[10:14], card.pdol_data[14:16])
    online_required = bool(ttq[1] & 0x80)
    kind = {"follow": 0x80 if online_required else 0x40, "tc": 0x40, "arqc": 0x80,
            "aac": 0x00}[app.decide]
    card.atc += 1
    atc = card.atc.to_bytes(2, "big")
    ac = hmac.new(b"card", card.pdol_data + atc, "sha256").digest()[:8]
    items: list[tuple[int, bytes]] = [
        (0x82, app.aip), (0x94, card.afl), (0x9F36, atc),
        (0x9F26, ac), (0x9F27, bytes([kind])), (0x9F10, bytes.fromhex("06011103A00000")),
        (0x9F6C, app.ctq),
    ]
    if app.oda == "dda" and kind == 0x40:
        card_auth = b"\x01\x11\x22\x33\x44\x80"
        sig = bytearray(dynamic_signature(b"\x04\x11\x22\x33\x44",
                                          un + amount + currency + card_auth))
        if app.tamper_signature:
            sig[5] ^= 0x01
        items += [(0x9F69, card_auth), (0x9F4B, bytes(sig))]
    return encode_constructed(0x77, items)


class KitReader(ScriptedReader):
    """The driver's scripted reader with a :class:`KitCard` answering every command."""

    def __init__(self, card: KitCard) -> None:
        super().__init__()
        self.card = card

    def respond(self, command: bytes) -> ResponseApdu:
        return self.card.respond(command)


def tlv_flat(data: bytes) -> dict[int, bytes]:
    return flatten(decode(data))


def replace_value(data: bytes, tag: int, value: bytes) -> bytes:
    """``data`` with every primitive ``tag`` given ``value`` (templates re-encoded)."""

    def rebuild(items: list[Tlv]) -> bytes:
        out = b""
        for item in items:
            if item.children:
                out += encode(item.tag, rebuild(item.children))
            else:
                out += encode(item.tag, value if item.tag == tag else item.value)
        return out

    return rebuild(decode(data))


class TweakReader(KitReader):
    """A :class:`KitReader` whose answers pass through ``tweak(command, answer, count)``.

    ``count`` is how many commands with this INS the card has seen, this one included,
    so a test can change only the second GENERATE AC, say.
    """

    def __init__(self, card: KitCard,
                 tweak: Callable[[bytes, ResponseApdu, int], ResponseApdu]) -> None:
        super().__init__(card)
        self.tweak = tweak
        self.seen: dict[int, int] = {}

    def respond(self, command: bytes) -> ResponseApdu:
        answer = super().respond(command)
        self.seen[command[1]] = self.seen.get(command[1], 0) + 1
        return self.tweak(command, answer, self.seen[command[1]])
