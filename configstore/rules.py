"""The one rule engine: validates config values for the admin, the API, imports, sources and pipelines.

A rule is `(kind, params, message)`. `validate_rule_params` checks a definition, `compile_rule` turns it
into a `check(value, *, present=True) -> list[str]` callable (empty list = valid). Compilation is the
expensive part (regexes, JSON schemas), so `RuleSet` compiles a namespace's rules once per rules version
and callers reuse it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, ClassVar

import fastjsonschema

from controlplane.jsonschemas import LOOP_MESSAGE, compile_schema, schema_problems
from controlplane.patterns import compile_user_regex, max_input_chars, regex_problem

Check = Callable[..., list[str]]
MAX_REGEX_LENGTH = 500
TYPE_NAMES = ("string", "integer", "number", "boolean", "list", "object")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    # `float(n)` overflows on huge integers, hence no float() round trip for ints.
    if isinstance(value, int):
        return value >= 0
    return value >= 0 and value.is_integer()


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null"


class RuleKind:
    """Base class: one kind of rule. Subclasses name their params and implement `errors`."""

    params_allowed: ClassVar[tuple[str, ...]] = ()
    params_required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    @classmethod
    def param_errors(cls, params: dict[str, Any]) -> list[str]:
        """Errors in `params` beyond unknown/missing names (checked by `validate_rule_params`)."""
        return []

    def errors(self, value: Any) -> list[str]:
        """Errors for a present value."""
        raise NotImplementedError

    def missing(self) -> list[str]:
        """Errors when the key is absent; only `required` objects."""
        return []


class TypeRule(RuleKind):
    """The value has one JSON type: string, integer, number (integers count), boolean, list, object."""

    params_allowed = ("type",)
    params_required = ("type",)

    @classmethod
    def param_errors(cls, params: dict[str, Any]) -> list[str]:
        if params.get("type") not in TYPE_NAMES:
            return [f"type must be one of {', '.join(TYPE_NAMES)}."]
        return []

    def errors(self, value: Any) -> list[str]:
        wanted, actual = self.params["type"], _type_of(value)
        if actual == wanted or (wanted == "number" and actual == "integer"):
            return []
        return [f"must be of type {wanted}, not {actual}."]


def _bound_errors(params: dict[str, Any]) -> list[str]:
    errors = []
    if "min" not in params and "max" not in params:
        errors.append("give min, max or both.")
    for name in ("min", "max"):
        if name in params and not _is_number(params[name]):
            errors.append(f"{name} must be a number.")
    if not errors and "min" in params and "max" in params and params["min"] > params["max"]:
        errors.append("min must not exceed max.")
    return errors


class RangeRule(RuleKind):
    """A number within [min, max] (either bound optional)."""

    params_allowed = ("min", "max")

    @classmethod
    def param_errors(cls, params: dict[str, Any]) -> list[str]:
        return _bound_errors(params)

    def errors(self, value: Any) -> list[str]:
        if not _is_number(value):
            return [f"must be a number, not {_type_of(value)}."]
        low, high = self.params.get("min"), self.params.get("max")
        if low is not None and value < low:
            return [f"must be at least {low}."]
        if high is not None and value > high:
            return [f"must be at most {high}."]
        return []


class RequiredRule(RuleKind):
    """The key must be present (and not null) in the effective config."""

    def errors(self, value: Any) -> list[str]:
        return ["is required and must not be null."] if value is None else []

    def missing(self) -> list[str]:
        return ["is required."]


class PatternRule(RuleKind):
    """A string matching a regular expression in full, on RE2 (linear time; see controlplane.patterns)."""

    params_allowed = ("regex",)
    params_required = ("regex",)

    @classmethod
    def param_errors(cls, params: dict[str, Any]) -> list[str]:
        regex = params.get("regex")
        if not isinstance(regex, str) or not regex or len(regex) > MAX_REGEX_LENGTH:
            return [f"regex must be a non-empty string of at most {MAX_REGEX_LENGTH} characters."]
        problem = regex_problem(regex)
        return [f"regex does not compile: {problem}"] if problem else []

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.regex = compile_user_regex(params["regex"])

    def errors(self, value: Any) -> list[str]:
        if not isinstance(value, str):
            return [f"must be a string, not {_type_of(value)}."]
        if not self.regex.fits(value):
            return [f"is too long to be matched against a pattern (over {max_input_chars()} characters)."]
        if self.regex.fullmatch(value) is None:
            return [f"must match {self.params['regex']}."]
        return []


class ChoicesRule(RuleKind):
    """One of a fixed list of values."""

    params_allowed = ("choices",)
    params_required = ("choices",)

    @classmethod
    def param_errors(cls, params: dict[str, Any]) -> list[str]:
        choices = params.get("choices")
        if not isinstance(choices, list) or not choices:
            return ["choices must be a non-empty list."]
        return []

    def errors(self, value: Any) -> list[str]:
        # Compare as JSON so that 1 and True, or 1 and 1.0, are not confused.
        encoded = json.dumps(value, sort_keys=True)
        if any(encoded == json.dumps(choice, sort_keys=True) for choice in self.params["choices"]):
            return []
        shown = ", ".join(json.dumps(c) for c in self.params["choices"][:20])
        return [f"must be one of {shown}."]


class LengthRule(RuleKind):
    """A string, list or object whose length is within [min, max]."""

    params_allowed = ("min", "max")

    @classmethod
    def param_errors(cls, params: dict[str, Any]) -> list[str]:
        errors = _bound_errors(params)
        if not errors and not all(_is_count(params.get(n, 0)) for n in ("min", "max")):
            errors.append("min and max must be non-negative integers.")
        return errors

    def errors(self, value: Any) -> list[str]:
        if not isinstance(value, (str, list, dict)):
            return [f"must be a string, list or object, not {_type_of(value)}."]
        low, high = self.params.get("min"), self.params.get("max")
        if low is not None and len(value) < low:
            return [f"must have length at least {low}."]
        if high is not None and len(value) > high:
            return [f"must have length at most {high}."]
        return []


class JsonSchemaRule(RuleKind):
    """A value valid against a JSON Schema: draft 2020-12 checked, fastjsonschema compiled, local `$ref`s
    only and patterns on RE2 (controlplane.jsonschemas)."""

    params_allowed = ("schema",)
    params_required = ("schema",)

    @classmethod
    def param_errors(cls, params: dict[str, Any]) -> list[str]:
        return schema_problems(params.get("schema"))

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.validate = compile_schema(params["schema"])

    def errors(self, value: Any) -> list[str]:
        try:
            self.validate(value)
        except fastjsonschema.JsonSchemaValueException as exc:
            return [f"does not match the schema: {exc.message[:500]}."]
        except RecursionError:
            # A $ref cycle only values of some shape reach (the save-time probe tries one of each type).
            return [f"cannot be checked: the {LOOP_MESSAGE}"]
        except ArithmeticError:
            # `multipleOf` divides in floats: an integer beyond float range (10**400) overflows.
            return ["does not match the schema: a number is out of the range the schema can check."]
        return []


RULE_KINDS: dict[str, type[RuleKind]] = {
    "type": TypeRule,
    "range": RangeRule,
    "required": RequiredRule,
    "pattern": PatternRule,
    "choices": ChoicesRule,
    "length": LengthRule,
    "json_schema": JsonSchemaRule,
}


def validate_rule_params(kind: Any, params: Any) -> list[str]:
    """Errors in a rule definition (unknown kind, unknown or missing params, bad values); empty = fine.

    Any JSON may arrive here (API bodies, imports, pipeline steps): a non-string kind or a wrongly typed
    param is an error in the list, never a TypeError.
    """
    cls = RULE_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        shown = repr(kind) if isinstance(kind, str) else f"of type {_type_of(kind)}"
        return [f"Unknown rule kind {shown[:100]}; known: {', '.join(RULE_KINDS)}."]
    if not isinstance(params, dict):
        return ["params must be an object."]
    errors = [f"unknown param {name!r} for {kind}." for name in sorted(params) if name not in cls.params_allowed]
    errors += [f"param {name!r} is required for {kind}." for name in cls.params_required if name not in params]
    if errors:
        return errors
    return cls.param_errors(params)


def compile_rule(kind: str, params: dict, message: str = "") -> Check:
    """Compile a valid rule into `check(value, *, present=True) -> list[str]`.

    A custom `message` replaces the kind's own messages. Raises `ValueError` for an invalid definition.
    """
    problems = validate_rule_params(kind, params)
    if problems:
        raise ValueError("; ".join(problems))
    rule = RULE_KINDS[kind](params)

    def check(value: Any = None, *, present: bool = True) -> list[str]:
        errors = rule.errors(value) if present else rule.missing()
        return [message] if errors and message else errors

    return check


def key_matches(pattern: str, key: str) -> bool:
    """Whether a rule's key pattern (exact key or glob such as `db.*`) covers `key`."""
    return pattern == key or (any(c in pattern for c in "*?[") and fnmatchcase(key, pattern))


def _compile_stored(kind: str, params: dict, message: str) -> Check:
    """`compile_rule` for a rule already stored: one saved before a check it now fails (a remote `$ref`, a
    backreference) refuses every value it covers, naming the reason, instead of failing the whole write."""
    try:
        return compile_rule(kind, params, message)
    except ValueError as exc:
        reason = f"cannot be checked: this rule is no longer valid ({str(exc)[:300]}); change or delete it."

        def broken(value: Any = None, *, present: bool = True) -> list[str]:
            return [reason]

        return broken


@dataclass(frozen=True)
class RuleViolation:
    """One failed check: the key, the rule (id and kind) and the message."""

    key: str
    rule_id: int | None
    kind: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "rule": self.rule_id, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class CompiledRule:
    """A rule compiled for a namespace."""

    rule_id: int | None
    pattern: str
    kind: str
    check: Check


class RuleSet:
    """A namespace's rules, compiled once; checks written values and the resulting effective config."""

    def __init__(self, rules: Iterable[tuple[int | None, str, str, dict, str]]) -> None:
        self.rules = [
            CompiledRule(rid, pattern, kind, _compile_stored(kind, params, message))
            for rid, pattern, kind, params, message in rules
        ]

    def check_values(self, values: dict[str, Any]) -> list[RuleViolation]:
        """Violations among `values` (key -> value) by every non-`required` rule covering each key."""
        violations = []
        for key, value in values.items():
            for rule in self.rules:
                if rule.kind != "required" and key_matches(rule.pattern, key):
                    violations += [RuleViolation(key, rule.rule_id, rule.kind, m) for m in rule.check(value)]
        return violations

    def check_required(self, effective: dict[str, Any]) -> list[RuleViolation]:
        """Violations of `required` rules against a flat effective config (key -> value)."""
        violations = []
        for rule in self.rules:
            if rule.kind != "required":
                continue
            matched = [k for k in effective if key_matches(rule.pattern, k)]
            if not matched:
                violations += [
                    RuleViolation(rule.pattern, rule.rule_id, rule.kind, m) for m in rule.check(present=False)
                ]
            for key in matched:
                violations += [RuleViolation(key, rule.rule_id, rule.kind, m) for m in rule.check(effective[key])]
        return violations
