"""Prometheus metrics of one platform worker, served on ``GET /metrics``.

=====================================================  =========================================
``etika_platform_uplinks_total{outcome}``              uplinks by outcome: accepted, duplicate,
                                                       rejected, held (both entry points)
``etika_platform_commits_total``                       database transactions of ingestion
``etika_platform_commit_seconds_total``                time spent in them (rate / commits rate
                                                       = mean commit time)
``etika_platform_mqtt_connected``                      1 while subscribed to the shared group
``etika_platform_mqtt_sessions_total``                 broker sessions opened (reconnects + 1)
``etika_platform_mqtt_received_total``                 uplinks taken from the broker
=====================================================  =========================================

The values are read from the ingestor's and the consumer's counters at scrape time (a
custom collector), in a registry of this worker's own, so that several apps in one process
(the tests) never collide in the global one.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_sync.platform.consumer import UplinkConsumer
from edge_sync.platform.ingest import OUTCOMES, Ingestor

__all__ = ["PlatformCollector", "platform_registry"]


class PlatformCollector(Collector):
    """Reads the counters of an ingestor (and, if any, a consumer) when scraped."""

    def __init__(self, ingestor: Ingestor, consumer: UplinkConsumer | None = None) -> None:
        self.ingestor = ingestor
        self.consumer = consumer

    def collect(self) -> Iterator[Metric]:
        uplinks = CounterMetricFamily(
            "etika_platform_uplinks", "Uplinks by outcome", labels=["outcome"]
        )
        for outcome in OUTCOMES:
            uplinks.add_metric([outcome], self.ingestor.counts[outcome])
        yield uplinks
        yield CounterMetricFamily(
            "etika_platform_commits", "Ingestion transactions", value=self.ingestor.commits
        )
        yield CounterMetricFamily(
            "etika_platform_commit_seconds",
            "Seconds spent in ingestion transactions",
            value=self.ingestor.commit_seconds,
        )
        if self.consumer is not None:
            stats = self.consumer.stats
            yield GaugeMetricFamily(
                "etika_platform_mqtt_connected",
                "1 while subscribed to the shared uplink subscription",
                value=1 if self.consumer.subscribed.is_set() else 0,
            )
            yield CounterMetricFamily(
                "etika_platform_mqtt_sessions", "Broker sessions opened", value=stats.sessions
            )
            yield CounterMetricFamily(
                "etika_platform_mqtt_received", "Uplinks taken from the broker",
                value=stats.received,
            )


def platform_registry(ingestor: Ingestor, consumer: UplinkConsumer | None = None
                      ) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(ingestor, consumer))
    return registry
