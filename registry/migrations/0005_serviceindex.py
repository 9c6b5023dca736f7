import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Discovery's blocking-query index per service (issue #12)."""

    dependencies = [
        ("registry", "0004_check_field_bounds"),
    ]

    operations = [
        migrations.CreateModel(
            name="ServiceIndex",
            fields=[
                (
                    "service",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="discovery_index",
                        serialize=False,
                        to="registry.service",
                    ),
                ),
                ("value", models.PositiveBigIntegerField(default=0)),
            ],
        ),
    ]
