"""Helpers shared by the config store's admin pages."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest

from configstore.access import ConfigActor


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def _config_actor(request: HttpRequest) -> ConfigActor:
    """The logged-in user's capabilities for config writes."""
    return ConfigActor.from_user(request.user)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
