"""factory_boy factories for the platform models (apps keep theirs in tests/<app>/factories.py)."""

from __future__ import annotations

import time

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

    @classmethod
    def create_with_hour_left(cls, rate: str, seconds: int = 120, **kwargs) -> tuple[APIKey, str]:  # type: ignore[no-untyped-def]
        """A key (and its plaintext) whose hourly rate window does not roll over in the next `seconds`.

        django-ratelimit windows end at a per-key offset; a window ending mid-test would legitimately
        admit a second batch, which is correct behaviour but not what count-exactness tests measure.
        """
        from django_ratelimit.core import _get_window

        kwargs.setdefault("scopes", ["events:read"])
        while True:
            key, raw = cls.create_with_plaintext(rate=rate, **kwargs)
            if _get_window(key.prefix, 3600) - time.time() > seconds:
                return key, raw


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
