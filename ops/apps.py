from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Project-level operations: commands that span every app (demo data, the staging smoke run)."""

    name = "ops"
    verbose_name = "Operations"
