"""Stand-in for the ``etika-pop-consensus`` back end (``etika sim pop``).

It verifies each terminal's signature on its PoP records, refuses replayed, reordered and
redirected ones, appends accepted records to a hash-chained ledger in SQLite, confirms them
after a configurable delay, deduplicates on record id, plays faults on request, and serves the
token-system stand-in's activation log. See :mod:`simulators.pop.server` for the routes.
"""

from __future__ import annotations

from simulators.pop.ledger import PopLedger
from simulators.pop.server import PopServer

__all__ = ["PopLedger", "PopServer"]
