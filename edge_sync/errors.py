"""Errors of the links to the outside (outbox, MQTT, HTTPS, PSP connectors, platform).

::

    EtikaError
    └── SyncError         (leaves added by the sync and connector modules)
"""

from __future__ import annotations

from etika_errors import EtikaError

__all__ = ["SyncError"]


class SyncError(EtikaError):
    """Root of the sync and connector errors."""
