"""factory_boy factories for the platform models (apps keep theirs in tests/<app>/factories.py)."""

from __future__ import annotations

import factory

from controlplane.access.models import APIKey
from controlplane.events.models import Event, WebhookSubscription


class APIKeyFactory(factory.django.DjangoModelFactory):
    """An API key; use `create_with_plaintext` when the test needs the secret."""

    class Meta:
        model = APIKey

    name = factory.Sequence(lambda n: f"key-{n}")
    scopes = factory.LazyFunction(lambda: ["admin"])

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        key, raw = model_class.objects.create_key(**kwargs)
        key.plaintext = raw
        return key

    @classmethod
    def create_with_plaintext(cls, **kwargs) -> tuple[APIKey, str]:  # type: ignore[no-untyped-def]
        key = cls.create(**kwargs)
        return key, key.plaintext


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    kind = "test.happened"
    actor = "system"
    subject = factory.Sequence(lambda n: f"subject-{n}")


class WebhookSubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookSubscription

    name = factory.Sequence(lambda n: f"hook-{n}")
    url = "http://127.0.0.1:9/hook"
    kinds = factory.LazyFunction(lambda: ["*"])
    secret = "s3cret-for-tests"
