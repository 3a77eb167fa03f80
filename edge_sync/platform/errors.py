"""Errors of the platform side of the sync protocol.

::

    EtikaError
    └── SyncError
        └── PlatformError                 root of the platform's errors
            ├── StorageError              the platform database failed (reconnect, retry later)
            │   └── UnstorableDataError   a value cannot be stored (never retry as is: the
            │                             batch is split and the culprit rejected)
            ├── RegistryError             a terminal key cannot be registered (fix the key file)
            ├── PlatformKeyError          the platform's token, its PIN or its signing key
            │                             cannot be used (fix the option or file named)
            ├── ListenError               the HTTP address cannot be listened on (choose another)
            ├── KeyNotRegisteredError     a known terminal signs with a key version the
            │                             platform lacks (rotation): the message is held,
            │                             not acked, until an operator registers that version
            ├── UplinkRejectedError       one uplink message is refused; ``reason`` goes back
            │   │                         to the terminal in a "rejected" ack
            │   ├── MalformedUplinkError  not JSON, truncated, or not a valid envelope
            │   ├── UnknownTerminalError  no public key registered for that terminal/version
            │   └── BadSignatureError     the signature does not verify with the registered key
            └── DownlinkError             a downlink file cannot be signed and published
                                          (fix the file or the broker address)

Library errors (``sqlite3.Error``, ``psycopg.Error``, ``aiomqtt.MqttError``) are mapped
to these leaves where they are raised (``raise … from exc``).
"""

from __future__ import annotations

from typing import Any

from edge_sync.errors import SyncError

__all__ = [
    "BadSignatureError",
    "DownlinkError",
    "KeyNotRegisteredError",
    "ListenError",
    "MalformedUplinkError",
    "PlatformError",
    "PlatformKeyError",
    "RegistryError",
    "StorageError",
    "UnknownTerminalError",
    "UnstorableDataError",
    "UplinkRejectedError",
]


class PlatformError(SyncError):
    """Root of the platform side's errors."""


class StorageError(PlatformError):
    """The platform database cannot be opened, migrated or written; nothing was acknowledged."""


class UnstorableDataError(StorageError):
    """The database refuses a value of the batch (out of range, invalid text): not an outage."""


class RegistryError(PlatformError):
    """A terminal's public key file is missing, unreadable or not an EC P-256 key."""

    exit_code = 2


class PlatformKeyError(PlatformError):
    """The platform's token, its PIN or its signing key cannot be used (fix the setting named)."""

    exit_code = 2


class ListenError(PlatformError):
    """The worker cannot listen on its HTTP address (in use, not local, not resolvable)."""

    exit_code = 2


class KeyNotRegisteredError(PlatformError):
    """A registered terminal used a key version the registry does not hold (yet)."""


class UplinkRejectedError(PlatformError):
    """An uplink is refused; ``reason`` is the short text sent back in the ack."""

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason, **fields)
        self.reason = reason


class MalformedUplinkError(UplinkRejectedError):
    """The payload is not JSON, is truncated, or does not match the envelope schema."""


class UnknownTerminalError(UplinkRejectedError):
    """No public key is registered for the terminal (or for that key version)."""


class BadSignatureError(UplinkRejectedError):
    """The envelope's signature does not verify against the registered public key."""


class DownlinkError(PlatformError):
    """A downlink cannot be built or published (bad file, unknown kind, broker unreachable)."""

    exit_code = 2
