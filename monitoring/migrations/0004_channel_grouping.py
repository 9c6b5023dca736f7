"""Grouping moves from the rule to the channel (Alertmanager's route + receiver), step 1 of 2: the channel's
settings, copied from a rule that notified it; the old per-rule groups are dropped (they are transient state:
a firing alert is notified again after the new group's wait). Schema changes of the groups follow in 0005,
in their own transaction (PostgreSQL refuses to ALTER a table with pending deferred-constraint events)."""

from django.db import migrations, models

import monitoring.models


def copy_rule_grouping(apps, schema_editor):  # type: ignore[no-untyped-def]
    Channel = apps.get_model("monitoring", "NotificationChannel")
    Rule = apps.get_model("monitoring", "AlertRule")
    AlertGroup = apps.get_model("monitoring", "AlertGroup")
    Notification = apps.get_model("monitoring", "Notification")
    for channel in Channel.objects.all():
        rule = Rule.objects.filter(channels=channel).order_by("pk").first()
        if rule is None:
            continue
        # A rule's group was already per rule: alertname (= the rule's name) keeps that apart across rules.
        by = list(rule.group_by or [])
        channel.group_by = ["..."] if "..." in by else ["alertname", *[b for b in by if b != "alertname"]]
        channel.group_wait_seconds = rule.group_wait_seconds
        channel.group_interval_seconds = rule.group_interval_seconds
        channel.repeat_interval_seconds = rule.repeat_interval_seconds
        channel.send_resolved = rule.send_resolved
        channel.save(
            update_fields=[
                "group_by",
                "group_wait_seconds",
                "group_interval_seconds",
                "repeat_interval_seconds",
                "send_resolved",
            ]
        )
    Notification.objects.filter(group__isnull=False).update(group=None)
    AlertGroup.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0003_notification_queued_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="notificationchannel",
            name="group_by",
            field=models.JSONField(
                blank=True,
                default=monitoring.models.default_group_by,
                help_text='Label names whose values make a group, across rules; [] = one group; ["..."] = every label.',
            ),
        ),
        migrations.AddField(
            model_name="notificationchannel",
            name="group_wait_seconds",
            field=models.PositiveIntegerField(default=30, help_text="A new group waits this long."),
        ),
        migrations.AddField(
            model_name="notificationchannel",
            name="group_interval_seconds",
            field=models.PositiveIntegerField(
                default=300, help_text="Wait before notifying about alerts new to (or resolved in) a notified group."
            ),
        ),
        migrations.AddField(
            model_name="notificationchannel",
            name="repeat_interval_seconds",
            field=models.PositiveIntegerField(
                default=14400, help_text="Re-send a group whose alerts are still firing, unchanged."
            ),
        ),
        migrations.AddField(
            model_name="notificationchannel",
            name="send_resolved",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="notificationchannel",
            name="flushing_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(copy_rule_grouping, migrations.RunPython.noop),
    ]
