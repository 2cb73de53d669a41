"""Usernames are unique regardless of case (``Ada`` and ``ada`` are one account), enforced by the
database so that simultaneous registrations cannot both pass the check."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("usage", "0005_holds_and_flags"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE UNIQUE INDEX auth_user_username_lower_uniq ON auth_user (lower(username))",
            "DROP INDEX auth_user_username_lower_uniq",
        )
    ]
