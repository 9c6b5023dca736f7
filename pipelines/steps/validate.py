"""`validate`: the config store's rule kinds (type, range, required, pattern, choices, length, json_schema)
over packet paths. On failure reject the packet with every error, or tag it `invalid` and continue.

There is one rule engine in the project (`configstore.rules`); this step only maps paths onto it.
"""

from __future__ import annotations

from pipelines.paths import MISSING, compile_getter, parse_path
from pipelines.steps.base import Apply, RunState, StepError, StepKind, check_path

INVALID_TAG = "invalid"


class ValidateStep(StepKind):
    """Check payload paths against config-store rules; reject or tag `invalid`."""

    kind = "validate"
    description = "Check paths with rule kinds (type, range, required, pattern, choices, length, json_schema)."
    schema = {
        "type": "object",
        "required": ["rules"],
        "additionalProperties": False,
        "properties": {
            "rules": {
                "type": "array",
                "minItems": 1,
                "maxItems": 200,
                "items": {
                    "type": "object",
                    "required": ["path", "kind"],
                    "additionalProperties": False,
                    "properties": {
                        "path": {"type": "string"},
                        "kind": {"type": "string"},
                        "params": {"type": "object"},
                        "message": {"type": "string", "maxLength": 500},
                    },
                },
            },
            "on_invalid": {"enum": ["reject", "tag"]},
        },
    }

    @classmethod
    def check(cls, config: dict) -> list[str]:
        from configstore.rules import validate_rule_params

        errors: list[str] = []
        for index, rule in enumerate(config["rules"]):
            check_path(errors, f"rules.{index}.path", rule["path"], writable=False)
            for problem in validate_rule_params(rule["kind"], rule.get("params", {})):
                errors.append(f"rules.{index}: {problem}")
        return errors

    @classmethod
    def compile(cls, config: dict) -> Apply:
        from configstore.rules import compile_rule

        checks = [
            (
                rule["path"],
                compile_getter(parse_path(rule["path"], writable=False)),
                compile_rule(rule["kind"], rule.get("params", {}), rule.get("message", "")),
            )
            for rule in config["rules"]
        ]
        tag = config.get("on_invalid", "reject") == "tag"

        def apply(packet: dict, state: RunState) -> None:
            errors: list[str] = []
            for path, get, check in checks:
                value = get(packet)
                present = value is not MISSING
                for message in check(value if present else None, present=present):
                    errors.append(f"{path} {message}")
            if not errors:
                return
            if not tag:
                raise StepError(f"{len(errors)} validation error(s): " + "; ".join(errors), errors)
            tags = packet.setdefault("tags", [])
            if INVALID_TAG not in tags:
                tags.append(INVALID_TAG)
            packet.setdefault("metadata", {})["validation_errors"] = errors

        return apply
