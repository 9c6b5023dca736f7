"""The docs match the code on the points a newcomer trips over: every revision origin and every actor the
code writes is listed, API keys in examples have the real format, the demo's enrich namespace is named
right, and the events `since` parameter is described as the id it is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("controlplane", "configstore", "registry", "pipelines", "monitoring")


def _doc(name: str) -> str:
    return (ROOT / "docs" / name).read_text()


def _keyword_literals(keyword: str) -> set[str]:
    """Every string literal (or f-string's literal head) passed as `keyword=` in the apps' code."""
    found: set[str] = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.keyword) or node.arg != keyword:
                    continue
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    found.add(node.value.value)
                elif isinstance(node.value, ast.JoinedStr) and isinstance(node.value.values[0], ast.Constant):
                    found.add(node.value.values[0].value + "<")  # f"source:{name}" -> "source:<"
    return found


def test_every_revision_origin_is_listed() -> None:
    origins = _keyword_literals("origin")
    assert {"admin", "import", "rollback", "bootstrap", "source:<"} <= origins | {"source:<"}, origins
    origins.add("api")  # the entry services' default
    doc = _doc("configstore.md")
    for origin in origins:
        shown = "`source:<name>`" if origin == "source:<" else f"`{origin}`"
        assert re.search(rf"^\| {re.escape(shown)} \|", doc, re.MULTILINE), f"origin {origin} not in the table"


def test_every_actor_the_code_writes_is_listed() -> None:
    actors = {a for a in _keyword_literals("actor") if a not in ("", "t", "test")}
    for path in (ROOT / "configstore").rglob("*.py"):
        actors |= set(re.findall(r'^ACTOR = "([^"]+)"', path.read_text(), re.MULTILINE))
    assert {"system", "cli", "bootstrap", "system:reload", "system:bootstrap"} <= actors, actors
    doc = _doc("api.md")
    table = doc[doc.index("| actor | who |") :]
    table = table[: table.index("\n\n")]
    for actor in actors:
        # An f-string actor (f"user:{name}") is listed by its head: `user:<name>`.
        shown = f"`{actor}" if actor.endswith("<") else f"`{actor}`"
        assert shown in table, f"actor {actor} not in docs/api.md's actor table"
    for pattern in ("`key:<prefix>`", "`user:<name>`"):
        assert pattern in table


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "docs").glob("*.md")) + ["../README.md"])
def test_api_keys_in_examples_have_the_real_format(name: str) -> None:
    """A literal key in an example looks like a real one (8-character prefix, dot, 32 characters)."""
    text = (ROOT / "docs" / name).read_text()
    for literal in re.findall(r"Api-Key ([^\s'\"`<$]+)", text):
        if literal.strip(".…") == "":  # a placeholder (`Api-Key …`), not a key
            continue
        assert re.fullmatch(r"[A-Za-z0-9]{8}\.[A-Za-z0-9<>]+", literal), (name, literal)
    for literal in re.findall(r"key looks like `([^`]+)`", text):
        assert re.fullmatch(r"[A-Za-z0-9]{8}\.<32 [a-z ]+>", literal), (name, literal)


def test_the_demo_enrich_namespace_is_the_one_the_docs_name() -> None:
    from pipelines.demo import AUDIT, ORDERS

    namespaces = {
        step["config"]["namespace"]
        for pipeline in (ORDERS, AUDIT)
        for step in pipeline["steps"]
        if step["kind"] == "enrich"
    }
    assert namespaces, "the demo pipeline has an enrich step"
    demo = _doc("pipelines.md").split("## Demo data", 1)[1]
    for namespace in namespaces:
        assert f"`{namespace}/" in demo or f"namespace `{namespace}`" in demo, namespace
    assert "namespace `demo`" not in demo


def test_events_since_is_described_as_an_id() -> None:
    doc = _doc("api.md")
    assert "**`since` is an event id**" in doc
    example = re.search(r"^# (.*)\ncurl [^\n]*/events/\?[^\n]*since=(\d+)", doc, re.MULTILINE)
    assert example and "id" in example.group(1) and "seconds" in example.group(1), example
