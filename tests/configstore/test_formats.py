"""Config document parsing is bounded: YAML aliases, nesting depth and NUL characters in every format."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ValidationError

from configstore import formats, services
from configstore.formats import FormatError, parse_document
from configstore.sources import SourceReadError

REPO = Path(__file__).resolve().parents[2]


def _laughs(levels: int, width: int = 9) -> str:
    """The classic billion-laughs document: each level an array of `width` aliases of the previous one."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        aliases = ",".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def _merge_laughs(levels: int) -> str:
    """Merge keys of merge keys: each mapping merges nine copies of the previous one under new keys."""
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"]
    for level in range(1, levels):
        keys = ", ".join(f"k{n}: *m{level - 1}" for n in range(9))
        lines.append(f"m{level}: &m{level} {{<<: *m{level - 1}, {keys}}}")
    return "\n".join(lines) + "\n"


BOMBS = {
    # the 369-byte shape (8.5 s, 439 MB before) and its 469-byte big brother (killed the worker)
    "laughs-7": _laughs(7),
    "laughs-9": _laughs(9),
    "nested-anchors-in-mappings": _merge_laughs(8),
    "merge-sequence": "a: &a {x: [1,2,3,4,5,6,7,8,9,10]}\n"
    + "".join(
        f"b{i}: &b{i}\n  <<: [{', '.join(['*a' if i == 0 else f'*b{i - 1}'] * 1)}]\n  k: [{','.join([('*a' if i == 0 else f'*b{i - 1}')] * 9)}]\n"
        for i in range(8)
    ),
    "wide-single-level": "a: &a [" + ",".join(["x"] * 2000) + "]\nb: [" + ",".join(["*a"] * 50) + "]\n",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_yaml_alias_bombs_are_refused_quickly(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(FormatError, match="aliases expand to more than"):
        parse_document(BOMBS[name], "yaml")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a {<<: *a}\n", "a: &a\n  b:\n    c: *a\n"],
    ids=["sequence", "mapping", "merge", "block"],
)
def test_yaml_recursive_aliases_are_refused(text: str) -> None:
    with pytest.raises(FormatError, match="refers to a node that contains it"):
        parse_document(text, "yaml")


def test_yaml_small_anchors_and_merge_keys_still_work() -> None:
    text = "defaults: &d {timeout: 5, retries: 2}\napi:\n  <<: *d\n  retries: 3\nworker: *d\n"
    assert parse_document(text, "yaml") == {
        "defaults": {"timeout": 5, "retries": 2},
        "api": {"timeout": 5, "retries": 3},
        "worker": {"timeout": 5, "retries": 2},
    }


def test_yaml_alias_budget_is_counted_across_aliases() -> None:
    """Many aliases of one medium node add up even though each alone is under the budget."""
    block = "a: &a [" + ",".join(str(n) for n in range(1000)) + "]\n"
    assert parse_document(block + "b: [" + ",".join(["*a"] * 9) + "]\n", "yaml")["b"][8][999] == 999
    with pytest.raises(FormatError, match="aliases expand"):
        parse_document(block + "b: [" + ",".join(["*a"] * 11) + "]\n", "yaml")


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("yaml", "a: " + "[" * 100_000 + "]" * 100_000),
        ("yaml", "a: " + "{b: " * 5_000 + "1" + "}" * 5_000),
        ("yaml", "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n"),
        ("toml", "a = " + "[" * 100_000 + "]" * 100_000),
        ("toml", "a = " + "{b=" * 100_000 + "1" + "}" * 100_000),
        ("toml", "a = [" + "[" * 70 + "1" + "]" * 70 + "]"),
        ("json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("json", '{"a": ' + "[" * 70 + "]" * 70 + "}"),
    ],
    ids=["yaml-flow", "yaml-flow-map", "yaml-block", "toml-array", "toml-inline", "toml-70", "json", "json-70"],
)
def test_deep_documents_are_refused_without_recursion_error(fmt: str, text: str) -> None:
    with pytest.raises(FormatError, match="nest"):
        parse_document(text, fmt)


def test_toml_brackets_inside_strings_and_comments_do_not_count() -> None:
    brackets = "[" * 200
    text = f'a = "{brackets}"\nb = \'{brackets}\'\nc = """\n{brackets}\n"""\n# {brackets}\n[t]\nd = [[1], [2]]\n'
    assert parse_document(text, "toml") == {
        "a": brackets,
        "b": brackets,
        "c": brackets + "\n",
        "t": {"d": [[1], [2]]},
    }


@pytest.mark.parametrize(
    ("fmt", "text", "where"),
    [
        ("yaml", 'a: "x\\0y"\n', "a"),
        ("yaml", 'a: {b: "\\x00"}\n', "a.b"),
        ("yaml", 'a: ["ok", "\\u0000"]\n', "a.1"),
        ("yaml", 'a: "\\U00000000"\n', "a"),
        ("yaml", '"k\\0": 1\n', "k\\u0000"),
        ("json", '{"a": {"b": "\\u0000"}}', "a.b"),
        ("json", '{"k\\u0000": 1}', "k\\u0000"),
        ("toml", 'a = "x\\u0000"\n', "a"),
        ("toml", '[s]\nb = ["\\U00000000"]\n', "s.b.0"),
        ("toml", '"k\\u0000" = 1\n', "k\\u0000"),
        ("ini", 'a = "\\u0000"\n', "a"),
        ("ini", "[s]\nb = a\x00b\n", "s.b"),
        ("env", "A='\"\\u0000\"'\n", "A"),
    ],
)
def test_nul_characters_are_refused_in_every_format(fmt: str, text: str, where: str) -> None:
    with pytest.raises(FormatError, match="NUL") as caught:
        parse_document(text, fmt)
    assert where in str(caught.value)


@pytest.mark.django_db
def test_import_of_a_bomb_changes_nothing(namespace) -> None:  # type: ignore[no-untyped-def]
    services.config_import(namespace=namespace, text="keep: 1\n", fmt="yaml", actor="test")
    with pytest.raises(ValidationError):
        services.config_import(namespace=namespace, text=BOMBS["laughs-9"], fmt="yaml", actor="test", replace=True)
    namespace.refresh_from_db()
    assert dict(namespace.entries.values_list("key", "value")) == {"keep": 1}


@pytest.mark.django_db
def test_file_source_uses_the_bounded_loader(namespace, source_root) -> None:  # type: ignore[no-untyped-def]
    (source_root / "bomb.yaml").write_text(BOMBS["laughs-7"])
    source = services.source_create(
        namespace=namespace, name="bomb", kind="file", path="bomb.yaml", reload=False, actor="test"
    )
    with pytest.raises((ValidationError, SourceReadError)) as caught:
        services.source_document(source)
    assert "aliases expand" in str(caught.value)


def test_every_yaml_load_in_the_project_goes_through_formats() -> None:
    """Only configstore/formats.py may call a PyYAML loader; everything else calls `formats.yaml_load`."""
    loaders = re.compile(r"\byaml\.(?:load|safe_load|full_load|unsafe_load|load_all|safe_load_all|compose)\s*\(")
    offenders = []
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith((".venv/", "tests/", "bench/", "node_modules/")) or relative == "configstore/formats.py":
            continue
        if loaders.search(path.read_text(errors="replace")):
            offenders.append(relative)
    assert offenders == []
    assert issubclass(formats.BoundedYAMLLoader, yaml.constructor.SafeConstructor)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("yaml", "a: .inf\n"),
        ("yaml", "a: [1, -.Inf]\n"),
        ("yaml", "a: {b: .nan}\n"),
        ("toml", "a = inf\n"),
        ("toml", "[s]\nb = nan\n"),
        ("json", '{"a": 1e999}'),
        ("json", '{"a": NaN}'),
        ("json", '{"a": [-Infinity]}'),
        ("ini", "a = 1e999\n"),
    ],
)
def test_non_finite_numbers_are_refused(fmt: str, text: str) -> None:
    """JSON has no NaN or infinity and PostgreSQL's jsonb refuses them (a 500 when stored)."""
    if fmt == "ini":  # an INI value that is not JSON stays text: nothing non-finite is stored
        assert parse_document(text, fmt) == {"a": "1e999"}
        return
    with pytest.raises(FormatError, match="NaN|infinite|out of range|not a JSON value"):
        parse_document(text, fmt)


BIG = "1" * 5000


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("yaml", f"a: {BIG}\n"),
        ("yaml", "a: 0x" + "f" * 5000 + "\n"),
        ("yaml", "a: 2001-13-45\n"),
        ("yaml", "a: !!timestamp 2001-13-45\n"),
        ("yaml", "a: !!int x\n"),
        ("yaml", "a: !!float x\n"),
        ("toml", f"a = {BIG}\n"),
        ("json", f'{{"a": {BIG}}}'),
    ],
)
def test_values_the_parser_cannot_construct_are_format_errors(fmt: str, text: str) -> None:
    """ValueErrors raised while building values (bad dates, bad explicit tags, huge integers): 400, not 500."""
    with pytest.raises(FormatError):
        parse_document(text, fmt)


# YAML types JSON has no form for: written out with str() they were Python reprs ("b'\\x00\\x00'", a set in
# hash order), and the bytes carried NUL past the NUL check.
NON_JSON_YAML = {
    "binary": "a: !!binary AAAA\n",
    "binary in a list": "a: [1, !!binary AAAA]\n",
    "binary nested": "a:\n  b: !!binary aGVsbG8=\n",
    "set": "a: !!set {x, y}\n",
    "set in a mapping value": "a: {b: !!set {x}}\n",
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(NON_JSON_YAML))
def test_yaml_values_without_a_json_form_are_refused_and_change_nothing(namespace, client_for, name) -> None:  # type: ignore[no-untyped-def]
    services.config_import(namespace=namespace, text="keep: 1\n", fmt="yaml", actor="test")
    client = client_for("config:read", "config:write")
    response = client.post(
        "/api/v1/config/payments/import/?format=yaml&replace=true",
        data=NON_JSON_YAML[name],
        content_type="application/yaml",
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert "no JSON form" in str(response.json()["errors"]) and "a" in str(response.json()["errors"])
    assert client.get("/api/v1/config/payments/").json() == {"keep": 1}


@pytest.mark.django_db
def test_a_file_source_with_binary_yaml_is_refused(namespace, source_root) -> None:  # type: ignore[no-untyped-def]
    (source_root / "bin.yaml").write_text("a: !!binary AAAA\n")
    source = services.source_create(
        namespace=namespace, name="bin", kind="file", path="bin.yaml", reload=False, actor="test"
    )
    result = services.source_reload(source=source, actor="test")
    assert result.status == "failed" and "no JSON form" in result.error
    assert not namespace.entries.exists()


@pytest.mark.django_db
def test_yaml_and_toml_dates_are_still_stored_as_iso_strings(namespace) -> None:
    """The control: values with an ISO form keep it."""
    services.config_import(
        namespace=namespace, text="d: 2001-01-02\nt: 2001-01-02T03:04:05Z\n", fmt="yaml", actor="test"
    )
    services.config_import(namespace=namespace, text="u = 07:32:00\n", fmt="toml", actor="test")
    stored = dict(namespace.entries.values_list("key", "value"))
    assert stored["d"] == "2001-01-02" and stored["t"].startswith("2001-01-02T03:04:05") and stored["u"] == "07:32:00"
