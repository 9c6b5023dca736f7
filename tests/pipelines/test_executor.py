"""The compiled executor: packets, caching per (pipeline, version), unexpected step errors, purity."""

from __future__ import annotations

import pytest

from pipelines.executor import CompiledCache, PacketError, compile_pipeline, prepare_packet
from pipelines.steps import STEP_KINDS, StepKind
from tests.pipelines.conftest import run_steps


def test_prepare_packet_fills_defaults_and_generates_an_id() -> None:
    packet = prepare_packet({"payload": [1]})
    assert packet["payload"] == [1] and packet["metadata"] == {} and packet["tags"] == []
    assert len(packet["id"]) == 32
    assert prepare_packet({"id": "abc", "payload": None})["id"] == "abc"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([1, 2], "non_field_errors"),
        ({"payload": 1, "extra": 2}, "non_field_errors"),
        ({"payload": 1, "metadata": []}, "metadata"),
        ({"payload": 1, "tags": ["a", 1]}, "tags"),
        ({"payload": 1, "id": 5}, "id"),
    ],
)
def test_prepare_packet_refuses_bad_shapes(raw: object, field: str) -> None:
    with pytest.raises(PacketError) as caught:
        prepare_packet(raw)
    assert field in caught.value.errors


class ExplodingStep(StepKind):
    """A test-only kind whose code has a bug."""

    kind = "exploding"

    @classmethod
    def compile(cls, config: dict):  # type: ignore[no-untyped-def]
        def apply(packet: dict, state: object) -> None:
            raise KeyError("boom")

        return apply


def test_an_unexpected_step_error_fails_the_packet_with_the_step_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STEP_KINDS, "exploding", ExplodingStep)
    result = run_steps([{"name": "buggy", "kind": "exploding", "config": {}}], {"payload": 1})
    assert result.status == "failed"
    assert result.error == "step 'buggy' failed: KeyError: 'boom'"


def test_the_cache_compiles_once_per_pipeline_version() -> None:
    cache = CompiledCache(size=2)
    loads: list[tuple[int, int]] = []

    def loader(pipeline_id: int, version: int):  # type: ignore[no-untyped-def]
        def load() -> dict:
            loads.append((pipeline_id, version))
            return {"id": pipeline_id, "version": version, "steps": []}

        return load

    first = cache.get((1, 1), loader(1, 1))
    assert cache.get((1, 1), loader(1, 1)) is first
    assert cache.get((1, 2), loader(1, 2)).version == 2
    cache.get((2, 1), loader(2, 1))  # evicts (1, 1), the least recently used
    cache.get((1, 1), loader(1, 1))
    assert loads == [(1, 1), (1, 2), (2, 1), (1, 1)]


def test_a_compiled_pipeline_does_not_change_the_callers_packet() -> None:
    compiled = compile_pipeline(
        {
            "id": 1,
            "version": 3,
            "steps": [
                {
                    "name": "s",
                    "kind": "transform",
                    "config": {"operations": [{"op": "set", "path": "payload.a", "value": 2}]},
                }
            ],
        }
    )
    packet = prepare_packet({"payload": {"a": 1}})
    result = compiled.run(packet)
    assert packet["payload"] == {"a": 1} and result.packet["payload"] == {"a": 2}
    assert result.pipeline_version == 3


def test_compile_refuses_an_invalid_definition() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        compile_pipeline({"id": 1, "version": 1, "steps": [{"name": "x", "kind": "nope", "config": {}}]})


@pytest.mark.parametrize(
    "payload",
    [{"n": 5, "s": "ab"}, {"n": 0, "s": "ab"}, {"n": 5, "s": 3}, {"n": -1, "s": "x"}, {"n": "bad", "s": "x"}],
)
def test_generated_straight_line_run_matches_the_generic_loop(payload: dict) -> None:
    steps = [
        {
            "name": "up",
            "kind": "transform",
            "priority": 1,
            "config": {"operations": [{"op": "upper", "path": "payload.s"}]},
        },
        {"name": "gate", "kind": "filter", "priority": 2, "config": {"when": "payload.n == `0`"}},
        {
            "name": "big",
            "kind": "transform",
            "priority": 3,
            "condition": "payload.n > `1`",
            "config": {"operations": [{"op": "add_tag", "value": "big"}]},
        },
        {
            "name": "check",
            "kind": "validate",
            "priority": 4,
            "config": {"rules": [{"path": "payload.n", "kind": "range", "params": {"min": 0}}]},
        },
        {
            "name": "route",
            "kind": "route",
            "priority": 5,
            "config": {"rules": [{"when": "contains(tags, 'big')", "to": "big"}], "default": "small"},
        },
    ]
    compiled = compile_pipeline({"id": 1, "version": 1, "steps": steps})
    assert compiled._fast is not None
    packet = prepare_packet({"id": "x", "payload": payload})
    fast = compiled.run(packet)
    generic = compiled.run(packet, capture=True)  # capture always takes the generic loop
    assert (fast.status, fast.packet, fast.routes, fast.error, fast.errors) == (
        generic.status,
        generic.packet,
        generic.routes,
        generic.error,
        generic.errors,
    )
    assert [e[:2] + e[3:5] for e in fast.log] == [e[:2] + e[3:5] for e in generic.log]
