"""The terminals' topics as the platform sees them on the broker (the one place that maps them).

The broker's terminal listener has ``mount_point terminals/`` (``edge_sync/broker/
mosquitto.conf``): Mosquitto puts that prefix in front of every topic a terminal publishes
or subscribes to (and its ACL file sees the prefixed topic). Terminals keep speaking
``etika/v1/t/{id}/...`` (:mod:`edge_sync.messages`; Mosquitto 2.0.11 leaves the prefix on
what it delivers to them, which their link accepts); the platform, on its own listener
without a mount point, sees and publishes ``terminals/etika/v1/t/{id}/...``.

Why: Mosquitto 2.0's ACL file checks deliveries, never SUBSCRIBE, so without the mount point
any terminal certificate could join the platform's shared group ``$share/etika-platform/...``
and have uplinks routed to it (then denied, so delayed until resent). Under the mount point a
terminal's ``$share/etika-platform/...`` becomes the plain filter
``terminals/$share/etika-platform/...``, outside the group, that no topic ever matches.
"""

from __future__ import annotations

from edge_sync.messages import TERMINALS_MOUNT_POINT, ack_topic, downlink_topic

__all__ = [
    "SHARED_SUBSCRIPTION_GROUP",
    "SHARED_UPLINK_FILTER",
    "TERMINALS_MOUNT_POINT",
    "platform_ack_topic",
    "platform_downlink_topic",
    "platform_topic",
    "terminal_topic",
]

SHARED_SUBSCRIPTION_GROUP = "etika-platform"
#: What platform workers subscribe to: the broker splits the uplink among them.
SHARED_UPLINK_FILTER = (
    f"$share/{SHARED_SUBSCRIPTION_GROUP}/{TERMINALS_MOUNT_POINT}etika/v1/t/+/up/#"
)


def platform_topic(terminal_side: str) -> str:
    """A topic (or filter) as terminals name it, as the platform must name it."""
    return TERMINALS_MOUNT_POINT + terminal_side


def terminal_topic(platform_side: str) -> str:
    """A topic the platform received, as the terminal named it (the mount point removed).

    A topic outside the mount point is returned unchanged: it then parses as no terminal's.
    """
    return platform_side.removeprefix(TERMINALS_MOUNT_POINT)


def platform_ack_topic(terminal_id: str) -> str:
    """Where the platform publishes acks so that ``terminal_id`` receives them."""
    return platform_topic(ack_topic(terminal_id))


def platform_downlink_topic(terminal_id: str, kind: str) -> str:
    """Where the platform publishes a ``kind`` downlink for ``terminal_id``."""
    return platform_topic(downlink_topic(terminal_id, kind))

