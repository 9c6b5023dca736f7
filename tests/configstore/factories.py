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


class StaffUserFactory(factory.django.DjangoModelFactory):
    """An admin staff user (not a superuser) holding the given configstore permission codenames.

    `StaffUserFactory(perms=["change_entry", "manage_secrets"])`.
    """

    class Meta:
        model = "auth.User"
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    password = factory.django.Password("pw")

    @factory.post_generation
    def perms(self, create: bool, extracted: list[str] | None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        from django.contrib.auth.models import Permission

        if create and extracted:
            self.user_permissions.add(
                *Permission.objects.filter(content_type__app_label="configstore", codename__in=extracted)
            )
