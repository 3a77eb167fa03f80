"""The platform side of the sync protocol: ingestion, fleet API, reconciliation, downlinks.

``etika platform serve`` runs FastAPI (the HTTPS fallback and the fleet API) and an MQTT
consumer on the shared subscription ``$share/etika-platform/terminals/etika/v1/t/+/up/#``
(:mod:`edge_sync.platform.topics`) in one process; several such workers split the uplink
between them. Storage is SQLite by default and PostgreSQL with a ``postgresql://`` URL. This
package imports ``edge_sync`` (the wire contract) and never ``terminal``.
"""

from edge_sync.platform.errors import (
    BadSignatureError,
    DownlinkError,
    KeyNotRegisteredError,
    MalformedUplinkError,
    PlatformError,
    RegistryError,
    StorageError,
    UnknownTerminalError,
    UnstorableDataError,
    UplinkRejectedError,
)
from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import PlatformStorage, open_storage

__all__ = [
    "BadSignatureError",
    "DownlinkError",
    "Ingestor",
    "KeyNotRegisteredError",
    "MalformedUplinkError",
    "PlatformError",
    "PlatformStorage",
    "RawUplink",
    "RegistryError",
    "StorageError",
    "UnknownTerminalError",
    "UnstorableDataError",
    "UplinkRejectedError",
    "open_storage",
]
