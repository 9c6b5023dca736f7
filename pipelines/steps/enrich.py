"""`enrich`: set a packet path from a config store value (the namespace's effective config).

The step itself does no I/O: the value comes from `state.lookup(namespace, key)`, which the runtime backs
with a per-process cache of effective config (see `pipelines.enrichment`), and tests back with a dict.
"""

from __future__ import annotations

from pipelines.paths import MISSING, compile_setter, copy_json, parse_path
from pipelines.steps.base import Apply, RunState, StepError, StepKind, check_path


class EnrichStep(StepKind):
    """Set `path` to the config value `namespace`/`key` (or `default` when the key is absent)."""

    kind = "enrich"
    description = "Set a path from a config store value: {path, namespace, key, default?, required?}."
    schema = {
        "type": "object",
        "required": ["path", "namespace", "key"],
        "additionalProperties": False,
        "properties": {
            "path": {"type": "string"},
            "namespace": {"type": "string", "minLength": 1, "maxLength": 200},
            "key": {"type": "string", "minLength": 1, "maxLength": 500},
            "default": {},
            "required": {"type": "boolean"},
        },
    }

    @classmethod
    def check(cls, config: dict) -> list[str]:
        errors: list[str] = []
        check_path(errors, "path", config["path"])
        return errors

    @classmethod
    def reads(cls, config: dict) -> frozenset[str]:
        return frozenset([config["namespace"]])

    @classmethod
    def compile(cls, config: dict) -> Apply:
        put = compile_setter(parse_path(config["path"]))
        namespace, key = config["namespace"], config["key"]
        has_default, default = "default" in config, config.get("default")
        required = config.get("required", False)

        def apply(packet: dict, state: RunState) -> None:
            value = state.lookup(namespace, key)
            if value is MISSING:
                if has_default:
                    value = copy_json(default)
                elif required:
                    raise StepError(f"config {namespace}/{key} is not set.")
                else:
                    return
            elif isinstance(value, (dict, list)):
                value = copy_json(value)  # the lookup's value is shared with other runs: never alias it
            put(packet, value)
            state.wrote(packet, value)

        return apply
