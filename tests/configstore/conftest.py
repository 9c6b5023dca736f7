"""Fixtures for the config store tests."""

from __future__ import annotations

import pytest
from django.test import override_settings

from configstore import services
from configstore.models import Namespace


@pytest.fixture
def namespace(db) -> Namespace:  # type: ignore[no-untyped-def]
    """An empty namespace `payments`."""
    return services.namespace_create(name="payments", description="test", actor="test")


@pytest.fixture
def add_rule(namespace):  # type: ignore[no-untyped-def]
    """`add_rule(key, kind, **params)` -> a rule on the `payments` namespace, through the service."""

    def make(key: str, kind: str, message: str = "", **params):  # type: ignore[no-untyped-def]
        return services.rule_create(
            namespace=namespace, key=key, kind=kind, params=params, message=message, actor="test"
        )

    return make


@pytest.fixture
def source_root(tmp_path):  # type: ignore[no-untyped-def]
    """A fresh CONFIG_SOURCE_ROOT for file sources."""
    root = tmp_path / "sources"
    root.mkdir()
    with override_settings(CONFIG_SOURCE_ROOT=root):
        yield root
