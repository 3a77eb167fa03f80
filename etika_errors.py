"""The root of every error the Étika terminal raises on purpose.

Each package draws its own tree under :class:`EtikaError` in its ``errors`` module
(``terminal.errors``, ``drivers.errors``, ``hsm.errors``, ``edge_sync.errors``)::

    EtikaError
    ├── terminal.errors.TerminalError   config, money, store, journal, EMV kernel
    ├── drivers.errors.DriverError      card reader, PIN pad
    ├── hsm.errors.HsmError             PKCS#11 key store
    └── edge_sync.errors.SyncError      outbox, transports, connectors, platform

This module is the only code of ours that ``drivers`` and ``hsm`` import, so that those
low layers stay free of the terminal while still sharing one root: the CLI catches
``EtikaError`` and prints its one-line message, never a traceback.

Leaves carry structured fields (a tag, an offset, a status word, a port) as keyword
arguments; they are kept in :attr:`EtikaError.fields` for logs and tests. Callers must
never put clear card data (PAN, track 2, PIN) in a message or a field.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EtikaError"]


class EtikaError(Exception):
    """An error the user or operator can act on; ``str()`` says what happened and what to do."""

    #: Process exit status the CLI uses when this error ends a command.
    exit_code: int = 1

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = fields

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        extra = "".join(f", {key}={value!r}" for key, value in self.fields.items())
        return f"{type(self).__name__}({self.message!r}{extra})"
