"""Metric sources, one module per kind of thing measured, keyed by name (adding one = a module + an entry)."""

from __future__ import annotations

from monitoring.sources.base import MinuteSource, Sampler
from monitoring.sources.celery import CelerySampler
from monitoring.sources.checks import ChecksSource
from monitoring.sources.deliveries import DeliveriesSampler
from monitoring.sources.namespaces import NamespacesSource
from monitoring.sources.pipelines import PipelinesSampler

MINUTE_SOURCES: dict[str, type[MinuteSource]] = {
    ChecksSource.name: ChecksSource,
    NamespacesSource.name: NamespacesSource,
}
SAMPLERS: dict[str, type[Sampler]] = {
    PipelinesSampler.name: PipelinesSampler,
    DeliveriesSampler.name: DeliveriesSampler,
    CelerySampler.name: CelerySampler,
}
