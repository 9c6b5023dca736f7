"""factory_boy factories for the config store."""

from __future__ import annotations

import factory

from configstore.models import Namespace, Rule


class NamespaceFactory(factory.django.DjangoModelFactory):
    """A namespace at revision 0."""

    class Meta:
        model = Namespace

    name = factory.Sequence(lambda n: f"ns{n}")
    description = "test namespace"


class RuleFactory(factory.django.DjangoModelFactory):
    """A rule; prefer `configstore.services.rule_create` when the rules version matters."""

    class Meta:
        model = Rule

    namespace = factory.SubFactory(NamespaceFactory)
    key = "db.port"
    kind = "type"
    params = factory.LazyFunction(lambda: {"type": "integer"})
