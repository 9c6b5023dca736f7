"""factory_boy factories for the registry models."""

from __future__ import annotations

import factory
from django.utils import timezone

from registry.models import Check, Instance, Service


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    name = factory.Sequence(lambda n: f"svc-{n}")
    type = "http_api"


class InstanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instance

    service = factory.SubFactory(ServiceFactory)
    instance_id = factory.Sequence(lambda n: f"i-{n}")
    address = "127.0.0.1"
    port = 8080
    scheme = "http"


class CheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Check

    instance = factory.SubFactory(InstanceFactory)
    name = factory.Sequence(lambda n: f"check-{n}")
    kind = "http"
    interval = 10
    timeout = 2
    next_run_at = factory.LazyFunction(timezone.now)
