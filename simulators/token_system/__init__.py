"""Stand-in for ``etika-token-system`` (seed 001 §3.3): it records the token-activation
events it receives, deduplicated on ``event_id``. Served by the PoP stand-in process
(``etika sim pop``) at ``/v1/token-system/activations``."""

from __future__ import annotations

from simulators.token_system.store import ActivationLog, ActivationRefusedError

__all__ = ["ActivationLog", "ActivationRefusedError"]
