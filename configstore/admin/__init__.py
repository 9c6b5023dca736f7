"""Admin for the config store: every save goes through the same services (and rules) as the API.

Entry forms carry the revision they were opened at and refuse a stale save (compare-and-swap); the entry
page shows every layer's value and which one wins; revisions can be rolled back; a source shows the diff
its current content would apply before "reload now" applies it.

Authorization is the services' (configstore/access.py): each write passes the user's `ConfigActor`.
Superusers hold every capability. Other staff get what Django's model permissions give them on the
database layer (add/change/delete entry), need `configstore.manage_secrets` for anything touching a secret
entry, and cannot define, change or remove sources (operator territory: superusers only). Pages only
mirror that rule (read-only secret entries, no source buttons) so users are not offered what the
services would refuse.
"""

from configstore.admin.entries import EntryAdmin, EntryForm, LayerFilter
from configstore.admin.namespaces import ImportForm, NamespaceAdmin
from configstore.admin.revisions import RevisionAdmin
from configstore.admin.rules import RuleAdmin, RuleForm
from configstore.admin.sources import SourceAdmin, SourceForm

__all__ = [
    "EntryAdmin",
    "EntryForm",
    "ImportForm",
    "LayerFilter",
    "NamespaceAdmin",
    "RevisionAdmin",
    "RuleAdmin",
    "RuleForm",
    "SourceAdmin",
    "SourceForm",
]
