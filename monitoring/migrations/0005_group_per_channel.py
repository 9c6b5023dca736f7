"""Grouping moves from the rule to the channel, step 2 of 2: a group is keyed by (channel, group label
values); the rule's grouping fields go (0004 copied them to its channels and emptied the group table)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0004_channel_grouping"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="alertgroup", name="monitoring_alert_group_unique"),
        migrations.RemoveField(model_name="alertgroup", name="rule"),
        migrations.AddField(
            model_name="alertgroup",
            name="channel",
            # The table is empty (0004): no default is needed for existing rows.
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="groups",
                to="monitoring.notificationchannel",
            ),
        ),
        migrations.AlterModelOptions(name="alertgroup", options={"ordering": ["channel", "key"]}),
        migrations.AddConstraint(
            model_name="alertgroup",
            constraint=models.UniqueConstraint(fields=("channel", "key"), name="monitoring_alert_group_unique"),
        ),
        migrations.RemoveField(model_name="alertrule", name="group_by"),
        migrations.RemoveField(model_name="alertrule", name="group_wait_seconds"),
        migrations.RemoveField(model_name="alertrule", name="group_interval_seconds"),
        migrations.RemoveField(model_name="alertrule", name="repeat_interval_seconds"),
        migrations.RemoveField(model_name="alertrule", name="send_resolved"),
    ]
