"""JSON bodies keep their JSON types: DRF's scalar fields stop converting between them.

DRF was written for HTML forms too, so its fields coerce: `CharField` takes `0` and stores `"0"`,
`BooleanField` takes `0`, `"yes"` and `"on"`, `IntegerField` takes `"12"` and `true`, `FloatField` takes
`"1.5"`. Every API body here is JSON (`BoundedJSONParser` is the only parser), and the OpenAPI document
promises JSON types (`"type": "string"`, `"boolean"`, `"integer"`, `"number"`), so a body with the wrong
type is refused with 400 like any other schema violation instead of being silently converted.

`install()` (called once from `ControlplaneConfig.ready`) wraps `to_internal_value` of those field classes
(and so of their subclasses: `EmailField`, `URLField`, `SlugField`, `RegexField`, ...). Nothing else uses DRF
serializers for input: the admin works on Django forms, query parameters are read by the views.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import fields

_INSTALLED = False


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    # JSON Schema counts 1.0 as an integer; bool is an int subclass in Python but not a JSON number.
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _strict(original: Callable[[Any, Any], Any], accepts: Callable[[Any], bool]) -> Callable[[Any, Any], Any]:
    def to_internal_value(self: fields.Field, data: Any) -> Any:
        if not accepts(data):
            self.fail("invalid")
        return original(self, data)

    to_internal_value.__doc__ = original.__doc__
    to_internal_value.strict_json = True  # type: ignore[attr-defined]
    return to_internal_value


def install() -> None:
    """Make DRF's string, boolean, integer and number fields accept only their own JSON type (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    for field_class, accepts in (
        (fields.CharField, _is_string),
        (fields.BooleanField, _is_boolean),
        (fields.IntegerField, _is_integer),
        (fields.FloatField, _is_number),
    ):
        field_class.to_internal_value = _strict(field_class.to_internal_value, accepts)  # type: ignore[method-assign]
    _INSTALLED = True
