"""factory_boy factories for pipelines (created through the services, like admin and API do)."""

from __future__ import annotations

import factory

from pipelines.models import Pipeline
from pipelines.services import pipeline_create


def transform_step(name: str = "tag", **extra) -> dict:  # type: ignore[no-untyped-def]
    return {"name": name, "kind": "transform", "config": {"operations": [{"op": "add_tag", "value": name}]}, **extra}


class PipelineFactory(factory.django.DjangoModelFactory):
    """A pipeline with one transform step unless `steps` is given."""

    class Meta:
        model = Pipeline

    slug = factory.Sequence(lambda n: f"pipe-{n}")
    name = factory.LazyAttribute(lambda o: f"Pipeline {o.slug}")
    description = ""
    error_policy = "stop"
    enabled = True
    steps = factory.LazyFunction(lambda: [transform_step()])

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        return pipeline_create(**kwargs)
