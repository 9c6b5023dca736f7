"""Existing keys get their prefix as primary key (it was "<prefix>.<hash>"), admin log entries follow.

No schema change: the column stays; only its values change. Nothing references the key table.
"""

from __future__ import annotations

from django.db import migrations
from django.db.models import F


def prefix_as_primary_key(apps, schema_editor):  # type: ignore[no-untyped-def]
    APIKey = apps.get_model("access", "APIKey")
    renamed = {key_id: prefix for key_id, prefix in APIKey.objects.exclude(id=F("prefix")).values_list("id", "prefix")}
    if not renamed:
        return
    APIKey.objects.exclude(id=F("prefix")).update(id=F("prefix"))
    try:
        LogEntry = apps.get_model("admin", "LogEntry")
        ContentType = apps.get_model("contenttypes", "ContentType")
    except LookupError:  # the admin is not installed: no log entries to fix
        return
    content_type = ContentType.objects.filter(app_label="access", model="apikey").first()
    if content_type is None:
        return
    for old, new in renamed.items():
        LogEntry.objects.filter(content_type=content_type, object_id=old).update(object_id=new)


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0001_initial"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(prefix_as_primary_key, migrations.RunPython.noop)]
