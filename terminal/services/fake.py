"""In-memory doubles of the services' links for tests and simulators.

:class:`SoftwareSigningKeys` is :class:`SigningKeys` without a token;
:class:`ScriptedReaderProbe` is a :class:`~terminal.services.cards.ReaderProbe` whose
readers a test plugs, fills and empties.


Behaves like the key store's signing key: versions start at 1, rotation makes a new current
version and keeps the older ones, so messages queued before a rotation still verify.
"""

from __future__ import annotations

from edge_sync.signing import SoftwareSigner
from terminal.services.cards import ReaderState, ReaderStatus

__all__ = ["ScriptedReaderProbe", "SoftwareSigningKeys"]


class _VersionedSigner:
    """The current key as a :class:`edge_sync.signing.RotatingSigner`."""

    def __init__(self, keys: SoftwareSigningKeys) -> None:
        self._keys = keys

    @property
    def key_version(self) -> int:
        return self._keys.signing_key_version

    def sign(self, data: bytes) -> bytes:
        return self._keys.for_version(self.key_version).sign(data)

    def public_key_pem(self) -> bytes:
        return self._keys.public_key_pem()

    def for_version(self, version: int) -> SoftwareSigner:
        return self._keys.for_version(version)


class SoftwareSigningKeys:
    """P-256 signing keys in memory, by version."""

    def __init__(self, first: SoftwareSigner | None = None) -> None:
        key = first or SoftwareSigner.generate(1)
        self._versions: dict[int, SoftwareSigner] = {key.key_version: key}
        self._current = key.key_version

    @property
    def signing_key_version(self) -> int:
        return self._current

    def signer(self) -> _VersionedSigner:
        return _VersionedSigner(self)

    def for_version(self, version: int) -> SoftwareSigner:
        try:
            return self._versions[version]
        except KeyError:
            raise ValueError(f"no signing key version {version}") from None

    def rotate_signing(self) -> int:
        version = max(self._versions) + 1
        self._versions[version] = SoftwareSigner.generate(version)
        self._current = version
        return version

    def public_key_pem(self, version: int | None = None) -> bytes:
        return self.for_version(self._current if version is None else version).public_key_pem()


class ScriptedReaderProbe:
    """Readers a test controls: ``plug(name)``, ``insert(name)``, ``remove(name)``,
    ``unplug(name)``; :meth:`probe` answers as :class:`PcscReaderProbe` would."""

    def __init__(self, *readers: str) -> None:
        self.cards: dict[str, bool] = dict.fromkeys(readers, False)
        self.probes = 0

    def plug(self, reader: str) -> None:
        self.cards.setdefault(reader, False)

    def unplug(self, reader: str) -> None:
        self.cards.pop(reader, None)

    def insert(self, reader: str) -> None:
        if reader not in self.cards:
            raise ValueError(f"no reader {reader!r} is plugged in: plug it first")
        self.cards[reader] = True

    def remove(self, reader: str) -> None:
        if reader in self.cards:
            self.cards[reader] = False

    async def probe(self) -> list[ReaderStatus]:
        self.probes += 1
        if not self.cards:
            return [ReaderStatus(ReaderState.NO_READER, None, "no card reader is attached")]
        return [ReaderStatus(ReaderState.CARD_IN if present else ReaderState.WAITING, name)
                for name, present in sorted(self.cards.items())]
