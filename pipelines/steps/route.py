"""`route`: name where the packet goes. Rules `{when, to}` in order, first match or all matches, and a default.

A target is a route name (`"fast"`), a registered service (`{"service": "billing"}`, delivered by Celery as an
HTTP POST) or another pipeline (`{"pipeline": "audit"}`, chained). In the result they read `fast`,
`service:billing` and `pipeline:audit`; the executor only names them, delivery happens outside it.
"""

from __future__ import annotations

import re
from typing import Any

from pipelines.steps.base import (
    EVALUATION_ERRORS,
    Apply,
    RunState,
    StepKind,
    check_expression,
    compile_expression,
    expression_failed,
    truthy,
)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
TARGET_SCHEMA = {
    "oneOf": [
        {"type": "string", "pattern": NAME.pattern},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["service"],
            "properties": {"service": {"type": "string", "pattern": NAME.pattern}},
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["pipeline"],
            "properties": {"pipeline": {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$"}},
        },
    ]
}


def route_name(target: Any) -> str:
    """The result's name for a target: `fast`, `service:<name>` or `pipeline:<slug>`."""
    if isinstance(target, dict):
        kind = "service" if "service" in target else "pipeline"
        return f"{kind}:{target[kind]}"
    return target


class RouteStep(StepKind):
    """Add routes to the result from ordered rules."""

    kind = "route"
    description = "Add routes: rules {when, to}, mode first|all, default; to may be a service or a pipeline."
    schema = {
        "type": "object",
        "required": ["rules"],
        "additionalProperties": False,
        "properties": {
            "rules": {
                "type": "array",
                "maxItems": 200,
                "items": {
                    "type": "object",
                    "required": ["when", "to"],
                    "additionalProperties": False,
                    "properties": {"when": {"type": "string", "minLength": 1}, "to": TARGET_SCHEMA},
                },
            },
            "mode": {"enum": ["first", "all"]},
            "default": {"anyOf": [TARGET_SCHEMA, {"type": "null"}]},
        },
    }

    @classmethod
    def check(cls, config: dict) -> list[str]:
        errors: list[str] = []
        for index, rule in enumerate(config["rules"]):
            check_expression(errors, f"rules.{index}.when", rule["when"])
        return errors

    @classmethod
    def chains(cls, config: dict) -> frozenset[str]:
        targets = [rule["to"] for rule in config["rules"]] + [config.get("default")]
        return frozenset(t["pipeline"] for t in targets if isinstance(t, dict) and "pipeline" in t)

    @classmethod
    def compile(cls, config: dict) -> Apply:
        rules = [(compile_expression(rule["when"]), route_name(rule["to"])) for rule in config["rules"]]
        first = config.get("mode", "first") == "first"
        default = route_name(config["default"]) if config.get("default") is not None else None

        evaluators = [(compiled.search, compiled, name) for compiled, name in rules]

        def apply(packet: dict, state: RunState) -> None:
            matched = False
            routes = state.routes
            for evaluate, compiled, name in evaluators:
                try:
                    value = evaluate(packet)
                except EVALUATION_ERRORS as exc:
                    raise expression_failed(compiled, exc) from None
                if truthy(value):
                    matched = True
                    if name not in routes:
                        routes.append(name)
                    if first:
                        break
            if not matched and default is not None and default not in routes:
                routes.append(default)

        return apply
