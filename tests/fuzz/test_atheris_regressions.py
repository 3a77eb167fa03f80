"""The atheris harnesses' inputs kept as regression tests (``fuzz/README.md``).

Each input is replayed through the harness's ``check``: it must end in the decoder's own
outcome (see each harness), not a crash. The PIN pad input is the first one atheris found:
``02 02 03 03`` (STX, STX restarts the packet, an empty message, its LRC) frames an empty
message, which ``decode_response`` refuses with ``ValueError`` — the contract the serial
driver maps to ``PinPadFrameError`` (the harness had expected ``PinPadError`` directly).
The kernel's inputs are transactions on a hostile card (``simulators.card.hostile``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("atheris", reason="atheris is in the dev extras (Linux, CPython < 3.13)")

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"


def _harness(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", FUZZ_DIR / f"fuzz_{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("harness",         "data"),
    [
        ("pinpad_frame",  bytes.fromhex("02020303")),          # found by atheris
        ("pinpad_frame",  b"\x0271.0\x1c0\x1c\x1c\x03\x00"),     # PIN entry, empty fields
        ("tlv",           bytes.fromhex("9F")),                # tag with no second byte
        ("tlv",           bytes.fromhex("5F2A8400000002")),    # long-form length, 4 bytes
        ("tlv",           bytes.fromhex("7003")),              # constructed, value missing
        ("iso8583",       b""),
        ("iso8583",       b"0210" + bytes(8)),                 # empty bitmap
        ("sync",          b"\x00" + b"[" * 5000),               # ack nested too deep
        ("sync",          b"\x01\x03{\"seq\": " + b"9" * 5000 + b"}"),  # int past digit limit
        ("sync",          b'\x02{"reason": "\\udfff"}'),        # signed ack, lone surrogate
        ("sync",          b'\x05\x03{"rates": {"EUR": NaN}}'),  # NaN is not JSON
        ("sync",          b"\x06" + b"{" * 3000),               # HTTPS answer too deep
        ("sync",          b"\x08x = " + b"[" * 3000),           # config TOML too deep
        # found by atheris: an empty IAC - denial (9F0E) on a contact card (ValueError in
        # the TVR match; now a CardDataError, #17 item 2)
        ("kernel",        bytes.fromhex("cb01000000000000000005"
                                        "1f000000000000000000" "5b6d")),
        ("kernel",        bytes.fromhex("000201")),            # an honest contact card
        ("kernel",        bytes.fromhex("010201")),            # an honest qVSDC tap
        ("psp_rest",      b""),                                # Stripe: authorise, 500s
        # #17 item 5: a Stripe authorisation times out three times, then every search
        # entry lacks its id (was a KeyError out of the router: the reversal was lost)
        ("psp_rest",      bytes.fromhex("0000f0f0f0" + "00000203010200" * 3)),
        # the same with a PayPal order without purchase_units
        ("psp_rest",      bytes.fromhex("0100f0f0f0" + "0000020a010400" * 3)),
        ("psp_rest",      bytes.fromhex("fc5589898989a689898989898989898989ee")),  # nesting
        ("profile",       bytes.fromhex("1e2d3650553e")),      # sync https_url "http://[::1"
        ("profile",       bytes.fromhex("9221479b90804582")),  # sync mqtt_host ""
        ("profile",       bytes.fromhex("d772147773ca82247f2e")),  # crl.toml nested 3,000 deep
        ("profile",       bytes.fromhex("7d91c8063359fcbcbac6")),  # FX as_of 9999-12-31
        ("profile",       bytes.fromhex("bf43986d29e43b3006143ce4e87436")),  # PSP http://[::1]x:80
        ("profile",       bytes.fromhex("4530b4174092a4e04e7c5e60")),  # merchant name not ASCII
    ],
)
def test_harness_inputs_end_in_the_decoders_own_outcome(harness: str, data: bytes) -> None:
    """A kept fuzz input replays without a crash (the harness raises on anything else)."""
    module = _harness(harness)
    assert module.check(data) is None
