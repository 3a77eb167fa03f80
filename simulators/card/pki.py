"""Deterministic RSA keys for the test PKI: CA → issuer → ICC, all derived from a seed.

Why by hand: no maintained library generates RSA keys from a seed (``cryptography`` and
OpenSSL draw from the OS RNG on purpose), and the test CA public keys must be the same on
every machine because they are the default profile's CAPKs. So primes come from a seeded
deterministic generator (SHA-256 in counter mode, keyed by the key's label) and a
Miller–Rabin test whose bases come from the same generator. These keys are for tests and
the demo only: the seed is public.

EMV uses public exponent 3 for every key here (Book 2 §5.1 allows 3 and 2^16+1); a prime p
is kept only when gcd(e, p−1) = 1.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

__all__ = [
    "DEFAULT_SEED",
    "DeterministicRandom",
    "RsaKey",
    "is_probable_prime",
    "rsa_key",
]

#: The project's public test seed; every test key derives from it and a label.
DEFAULT_SEED = b"etika-test-pki-v1"

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


class DeterministicRandom:
    """SHA-256(seed ‖ label ‖ counter) blocks: the same bytes for the same seed and label."""

    def __init__(self, seed: bytes, label: str) -> None:
        self._key = hashlib.sha256(seed + b"\x00" + label.encode()).digest()
        self._counter = 0

    def bytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return bytes(out[:n])

    def below(self, limit: int) -> int:
        """A uniform integer in [0, limit) (rejection sampling)."""
        size = (limit.bit_length() + 7) // 8
        while True:
            value = int.from_bytes(self.bytes(size), "big") >> (size * 8 - limit.bit_length())
            if value < limit:
                return value


def is_probable_prime(n: int, rng: DeterministicRandom, rounds: int = 40) -> bool:
    """Miller–Rabin with ``rounds`` random bases (error < 4^-rounds)."""
    if n < 4:
        return n in (2, 3)
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        a = 2 + rng.below(n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, e: int, rng: DeterministicRandom) -> int:
    while True:
        candidate = int.from_bytes(rng.bytes((bits + 7) // 8), "big")
        candidate >>= (candidate.bit_length() - bits) if candidate.bit_length() > bits else 0
        candidate |= (0b11 << (bits - 2)) | 1  # top two bits: p*q has exactly 2*bits bits
        if math.gcd(e, candidate - 1) == 1 and is_probable_prime(candidate, rng):
            return candidate


@dataclass(frozen=True)
class RsaKey:
    """An RSA key pair; EMV signs by raw RSA on a formatted block (no PKCS#1 padding)."""

    label: str
    n: int
    e: int
    d: int
    p: int
    q: int

    @property
    def size(self) -> int:
        """Modulus length in bytes (N_CA, N_I, N_IC in Book 2)."""
        return (self.n.bit_length() + 7) // 8

    @property
    def modulus(self) -> bytes:
        return self.n.to_bytes(self.size, "big")

    @property
    def exponent(self) -> bytes:
        return self.e.to_bytes(max(1, (self.e.bit_length() + 7) // 8), "big")

    def sign(self, block: bytes) -> bytes:
        """Raw RSA private operation on a block as long as the modulus (Book 2 §5.1)."""
        if len(block) != self.size:
            raise ValueError(f"an RSA block is {self.size} bytes, got {len(block)}")
        value = int.from_bytes(block, "big")
        if value >= self.n:
            raise ValueError("the block is not smaller than the modulus (header must be 6A)")
        return pow(value, self.d, self.n).to_bytes(self.size, "big")

    def recover(self, signature: bytes) -> bytes:
        """Raw RSA public operation: what a terminal does to a certificate or signature."""
        return pow(int.from_bytes(signature, "big"), self.e, self.n).to_bytes(self.size, "big")

    def __repr__(self) -> str:
        return f"RsaKey(label={self.label!r}, bits={self.n.bit_length()}, e={self.e})"


@functools.cache
def rsa_key(label: str, bits: int, e: int = 3, seed: bytes = DEFAULT_SEED) -> RsaKey:
    """The RSA key for ``label`` (``bits``-bit modulus), the same on every machine."""
    if bits % 16 or bits < 512:
        raise ValueError(f"modulus size must be a multiple of 16 bits, at least 512: {bits}")
    rng = DeterministicRandom(seed, f"{label}/{bits}/{e}")
    while True:
        p = _prime(bits // 2, e, rng)
        q = _prime(bits // 2, e, rng)
        if p == q:
            continue
        n = p * q
        if n.bit_length() != bits:
            continue
        phi = math.lcm(p - 1, q - 1)
        d = pow(e, -1, phi)
        return RsaKey(label=label, n=n, e=e, d=d, p=min(p, q), q=max(p, q))
