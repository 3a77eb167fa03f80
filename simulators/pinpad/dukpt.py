"""DUKPT key derivation: TDES (ANSI X9.24-1:2009 §A) and AES (ANSI X9.24-3:2017 §6).

Written by hand: neither ``psec`` nor ``pyemv`` (nor anything else installed) derives
DUKPT keys — psec has the PIN block formats and the block ciphers, pyemv the EMV session
keys. This module holds only pure functions over bytes and a small originator (the PIN
pad's side); both the simulated PIN pad and the acquirer's verification use it. It must
never be imported by ``terminal`` or ``drivers``: whoever holds a BDK can recover PINs.

TDES DUKPT (X9.24-1:2009 A.6): the 80-bit KSN is a 59-bit initial KSN and a 21-bit
transaction counter. The initial key (IPEK) is the BDK's encryption of the initial KSN
(left half) and of the same under the BDK XOR ``C0C0C0C0 00000000 C0C0C0C0 00000000``
(right half). The transaction key walks the counter's one-bits from the top, each step a
"non-reversible key generation process"; the PIN key is that key XOR the PIN variant
``00000000000000FF 00000000000000FF`` (A.6 "Request PIN Entry", variant constants).

AES DUKPT (X9.24-3:2017 §6.3): the 96-bit KSN is a 64-bit initial key ID and a 32-bit
counter. Every key is AES-ECB of 16-byte derivation data blocks (§6.3.2, Table 2):
version 01, block counter (01, 02 for the second half of a 256-bit key), key usage,
algorithm, length in bits, then 8 bytes (the initial key ID for the initial key; the ID's
low 4 bytes and a counter otherwise). The BDK may be AES-128, -192 or -256; the initial,
derivation and PIN working keys here are of the BDK's type (so the acquirer needs only
the BDK and the KSN to know which key to derive).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from psec.aes import encrypt_aes_ecb

__all__ = [
    "AES_KSN_LENGTH",
    "TDES_KSN_LENGTH",
    "DukptOriginator",
    "KsnExhaustedError",
    "aes_derivation_key",
    "aes_initial_key",
    "aes_pin_key",
    "des_encrypt",
    "tdes_encrypt",
    "tdes_initial_key",
    "tdes_pin_key",
    "tdes_transaction_key",
]

TDES_KSN_LENGTH = 10
AES_KSN_LENGTH = 12

_TDES_COUNTER_BITS = 21
_TDES_COUNTER_MASK = (1 << _TDES_COUNTER_BITS) - 1
_TDES_MAX_ONE_BITS = 10  # X9.24-1 A.2: counters with more than ten one-bits are skipped
_AES_MAX_ONE_BITS = 16  # X9.24-3 §6.1: at most sixteen one-bits
_AES_COUNTER_MAX = 0xFFFFFFFF

_KEY_MASK = bytes.fromhex("C0C0C0C000000000C0C0C0C000000000")
_PIN_VARIANT = bytes.fromhex("00000000000000FF00000000000000FF")

# X9.24-3:2017 Table 2 key usage indicators and Table 3 algorithm indicators.
_USAGE_KEY_DERIVATION = 0x8000
_USAGE_INITIAL_KEY = 0x8001
_USAGE_PIN_ENCRYPTION = 0x1000
# Algorithm indicator per AES key length in bytes (Table 3: 0002 AES-128 ... 0004 AES-256).
_AES_ALGORITHM = {16: 0x0002, 24: 0x0003, 32: 0x0004}


class KsnExhaustedError(Exception):
    """The PIN pad has used every transaction counter its KSN allows; it must be re-keyed."""


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def des_encrypt(key8: bytes, block: bytes) -> bytes:
    """Single DES, one block (as TDES with K1 = K2 = K3, which is DES by construction)."""
    if len(key8) != 8:
        raise ValueError("a DES key is 8 bytes")
    return tdes_encrypt(key8 * 3, block)


def tdes_encrypt(key: bytes, block: bytes) -> bytes:
    """TDES-ECB of 8-byte blocks; a 16-byte key is used as K1 K2 K1 (2-key TDES)."""
    if len(key) == 16:
        key = key + key[:8]
    if len(key) != 24:
        raise ValueError("a TDES key is 16 or 24 bytes")
    if len(block) % 8:
        raise ValueError("TDES data must be a multiple of 8 bytes")
    # ECB on single blocks is what X9.24 specifies for key derivation and PIN blocks.
    encryptor = Cipher(TripleDES(key), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(block) + encryptor.finalize()


def tdes_decrypt(key: bytes, block: bytes) -> bytes:
    """TDES-ECB decryption, the inverse of :func:`tdes_encrypt`."""
    if len(key) == 16:
        key = key + key[:8]
    if len(key) != 24:
        raise ValueError("a TDES key is 16 or 24 bytes")
    if len(block) % 8:
        raise ValueError("TDES data must be a multiple of 8 bytes")
    decryptor = Cipher(TripleDES(key), modes.ECB()).decryptor()  # noqa: S305
    return decryptor.update(block) + decryptor.finalize()


# --- TDES DUKPT (ANSI X9.24-1:2009) -----------------------------------------------------


def _check_tdes(bdk_or_key: bytes, ksn: bytes) -> None:
    if len(bdk_or_key) != 16:
        raise ValueError("TDES DUKPT keys are 16 bytes (double-length TDES)")
    if len(ksn) != TDES_KSN_LENGTH:
        raise ValueError("a TDES DUKPT KSN is 10 bytes")


def tdes_counter(ksn: bytes) -> int:
    """The 21-bit transaction counter of a 10-byte KSN."""
    return int.from_bytes(ksn[-3:], "big") & _TDES_COUNTER_MASK


def tdes_initial_key(bdk: bytes, ksn: bytes) -> bytes:
    """IPEK from BDK and any KSN of the device (X9.24-1:2009 A.6, "initial PIN entry key")."""
    _check_tdes(bdk, ksn)
    initial_ksn = (int.from_bytes(ksn, "big") & ~_TDES_COUNTER_MASK).to_bytes(10, "big")[:8]
    left = tdes_encrypt(bdk, initial_ksn)
    right = tdes_encrypt(_xor(bdk, _KEY_MASK), initial_ksn)
    return left + right


def _non_reversible_key_generation(key: bytes, data: bytes) -> bytes:
    """X9.24-1:2009 A.2 "Non-reversible Key Generation Process" on a 16-byte key."""

    def half(k: bytes) -> bytes:
        left, right = k[:8], k[8:]
        return _xor(des_encrypt(left, _xor(data, right)), right)

    right_half = half(key)
    left_half = half(_xor(key, _KEY_MASK))
    return left_half + right_half


def tdes_transaction_key(initial_key: bytes, ksn: bytes) -> bytes:
    """The transaction key for ``ksn`` from the IPEK (no variant applied)."""
    _check_tdes(initial_key, ksn)
    counter = tdes_counter(ksn)
    register = int.from_bytes(ksn[2:], "big") & ~_TDES_COUNTER_MASK & ((1 << 64) - 1)
    key = initial_key
    bit = 1 << (_TDES_COUNTER_BITS - 1)
    while bit:
        if counter & bit:
            register |= bit
            key = _non_reversible_key_generation(key, register.to_bytes(8, "big"))
        bit >>= 1
    return key


def tdes_pin_key(initial_key: bytes, ksn: bytes) -> bytes:
    """The PIN encryption key for ``ksn``: transaction key XOR the PIN variant."""
    return _xor(tdes_transaction_key(initial_key, ksn), _PIN_VARIANT)


# --- AES DUKPT (ANSI X9.24-3:2017), AES-128 keys ----------------------------------------


def _aes_derive(key: bytes, usage: int, tail: bytes, length: int) -> bytes:
    """X9.24-3 §6.3.2 "Derive Key": AES-ECB under ``key`` of one derivation data block per
    128 bits of the derived key (of ``length`` bytes)."""
    header = usage.to_bytes(2, "big") + _AES_ALGORITHM[length].to_bytes(2, "big")
    header += (length * 8).to_bytes(2, "big")
    blocks = (length + 15) // 16
    derived = b"".join(
        encrypt_aes_ecb(key, bytes([0x01, counter]) + header + tail)
        for counter in range(1, blocks + 1)
    )
    return derived[:length]


def _check_aes(key: bytes, ksn: bytes) -> None:
    if len(key) not in _AES_ALGORITHM:
        raise ValueError("AES DUKPT keys are 16, 24 or 32 bytes")
    if len(ksn) != AES_KSN_LENGTH:
        raise ValueError("an AES DUKPT KSN is 12 bytes")


def aes_counter(ksn: bytes) -> int:
    """The 32-bit transaction counter of a 12-byte KSN."""
    return int.from_bytes(ksn[8:], "big")


def aes_initial_key(bdk: bytes, ksn: bytes) -> bytes:
    """Initial key from BDK and the KSN's initial key ID (X9.24-3:2017 §6.3.1)."""
    _check_aes(bdk, ksn)
    return _aes_derive(bdk, _USAGE_INITIAL_KEY, ksn[:8], len(bdk))


def aes_derivation_key(initial_key: bytes, ksn: bytes) -> bytes:
    """The intermediate derivation key for the KSN's counter (§6.3.3, counter walk)."""
    _check_aes(initial_key, ksn)
    counter = aes_counter(ksn)
    device_id = ksn[4:8]
    key = initial_key
    working = 0
    mask = 1 << 31
    while mask:
        if counter & mask:
            working |= mask
            tail = device_id + working.to_bytes(4, "big")
            key = _aes_derive(key, _USAGE_KEY_DERIVATION, tail, len(initial_key))
        mask >>= 1
    return key


def aes_pin_key(initial_key: bytes, ksn: bytes) -> bytes:
    """The PIN encryption working key for ``ksn`` (§6.3.3, usage 1000), of the IK's type."""
    derivation_key = aes_derivation_key(initial_key, ksn)
    return _aes_derive(
        derivation_key, _USAGE_PIN_ENCRYPTION, ksn[4:8] + ksn[8:12], len(initial_key)
    )


# --- the PIN pad's side -----------------------------------------------------------------


@dataclass
class DukptOriginator:
    """The PIN pad's DUKPT state: its initial key and the last KSN it used.

    Simplification, said plainly: a certified device keeps the X9.24 future-key registers
    and erases each key after use; this simulator keeps the initial key and re-derives.
    What the acquirer sees is identical: every PIN uses the next valid counter, and a
    counter (hence a key) is never used twice — :meth:`next_pin_key` refuses to go back.
    """

    initial_key: bytes
    ksn: bytes

    def __post_init__(self) -> None:
        if len(self.ksn) == TDES_KSN_LENGTH:
            _check_tdes(self.initial_key, self.ksn)
        elif len(self.ksn) == AES_KSN_LENGTH:
            _check_aes(self.initial_key, self.ksn)
        else:
            raise ValueError("a KSN is 10 bytes (TDES DUKPT) or 12 bytes (AES DUKPT)")
        self.used_counters: list[int] = []

    @classmethod
    def from_bdk(cls, bdk: bytes, ksn: bytes) -> DukptOriginator:
        """Inject the device as a key-injection facility would: IK from BDK and KSN."""
        if len(ksn) == TDES_KSN_LENGTH:
            return cls(tdes_initial_key(bdk, ksn), ksn)
        if len(ksn) == AES_KSN_LENGTH:
            return cls(aes_initial_key(bdk, ksn), ksn)
        raise ValueError("a KSN is 10 bytes (TDES DUKPT) or 12 bytes (AES DUKPT)")

    @property
    def is_aes(self) -> bool:
        return len(self.ksn) == AES_KSN_LENGTH

    @property
    def pin_block_format(self) -> int:
        """ISO 9564 format 4 under AES DUKPT, format 0 under TDES DUKPT."""
        return 4 if self.is_aes else 0

    def _counter(self) -> int:
        return aes_counter(self.ksn) if self.is_aes else tdes_counter(self.ksn)

    def _with_counter(self, counter: int) -> bytes:
        if self.is_aes:
            return self.ksn[:8] + counter.to_bytes(4, "big")
        base = int.from_bytes(self.ksn, "big") & ~_TDES_COUNTER_MASK
        return (base | counter).to_bytes(10, "big")

    def next_pin_key(self) -> tuple[bytes, bytes]:
        """Advance to the next valid counter; return ``(ksn, pin_key)`` for one PIN only."""
        limit, max_bits = (
            (_AES_COUNTER_MAX, _AES_MAX_ONE_BITS)
            if self.is_aes
            else (_TDES_COUNTER_MASK, _TDES_MAX_ONE_BITS)
        )
        counter = self._counter() + 1
        while counter <= limit and counter.bit_count() > max_bits:
            counter += 1
        if counter > limit:
            raise KsnExhaustedError("the PIN pad's transaction counter is exhausted; re-inject it")
        ksn = self._with_counter(counter)
        self.ksn = ksn
        self.used_counters.append(counter)
        if self.is_aes:
            return ksn, aes_pin_key(self.initial_key, ksn)
        return ksn, tdes_pin_key(self.initial_key, ksn)
