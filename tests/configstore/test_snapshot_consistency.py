"""A snapshot is labelled with the revision whose entries it holds, also when a write races its read."""

from __future__ import annotations

import pytest

from configstore import selectors, services


@pytest.mark.django_db
def test_a_write_between_the_revision_and_the_entries_is_not_labelled_with_the_older_revision(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The revision and the entries are separate statements: a write committed between them once made a
    snapshot "revision 2" holding revision 3's value (a config watcher printed it; CI, production pass)."""
    namespace = services.namespace_create(name="race", actor="t")
    services.config_entry_set(namespace=namespace, key="a", value=1, actor="t")
    monkeypatch.setattr(selectors, "_snapshots", {})
    real_build = selectors._build_snapshot  # noqa: SLF001
    raced: list[int] = []

    def build_after_a_racing_write(namespace_id, name, revision):  # type: ignore[no-untyped-def]
        if not raced:
            raced.append(revision)
            services.config_entry_set(namespace=namespace, key="a", value=2, actor="racer")  # commits first
        return real_build(namespace_id, name, revision)

    monkeypatch.setattr(selectors, "_build_snapshot", build_after_a_racing_write)
    snapshot = selectors.config_snapshot("race")
    assert raced == [1]
    assert (snapshot.revision, snapshot.flat["a"]) == (2, 2)
