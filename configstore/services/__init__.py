"""Every write in the config store, by area: change sets, entries, namespaces, sources, rules.

Every change to entries, whatever its path, goes through `config_changes_apply` (services/changes.py).
"""

from configstore.services.changes import EntryChange, config_changes_apply, key_errors
from configstore.services.entries import (
    config_entry_delete,
    config_entry_set,
    config_import,
    config_rollback,
    object_keys,
    parse_config_text,
)
from configstore.services.namespaces import namespace_create, namespace_delete, namespace_update
from configstore.services.rules import rule_create, rule_delete, rule_update
from configstore.services.sources import (
    ReloadResult,
    source_create,
    source_delete,
    source_document,
    source_reload,
    source_update,
    sources_reload,
)

__all__ = [
    "EntryChange",
    "ReloadResult",
    "config_changes_apply",
    "config_entry_delete",
    "config_entry_set",
    "config_import",
    "config_rollback",
    "key_errors",
    "namespace_create",
    "namespace_delete",
    "namespace_update",
    "object_keys",
    "parse_config_text",
    "rule_create",
    "rule_delete",
    "rule_update",
    "source_create",
    "source_delete",
    "source_document",
    "source_reload",
    "source_update",
    "sources_reload",
]
