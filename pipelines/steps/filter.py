"""`filter`: drop the packet when an expression over it is truthy (the run ends with status `dropped`)."""

from __future__ import annotations

from pipelines.steps.base import (
    Apply,
    DropPacket,
    RunState,
    StepKind,
    check_expression,
    compile_expression,
    search,
    truthy,
)


class FilterStep(StepKind):
    """Drop packets for which `when` is truthy."""

    kind = "filter"
    description = "Drop the packet when `when` (JMESPath) is truthy."
    schema = {
        "type": "object",
        "required": ["when"],
        "additionalProperties": False,
        "properties": {"when": {"type": "string", "minLength": 1}},
    }

    @classmethod
    def check(cls, config: dict) -> list[str]:
        errors: list[str] = []
        check_expression(errors, "when", config["when"])
        return errors

    @classmethod
    def compile(cls, config: dict) -> Apply:
        compiled = compile_expression(config["when"])

        def apply(packet: dict, state: RunState) -> None:
            if truthy(search(compiled, packet)):
                raise DropPacket(config["when"])

        return apply
