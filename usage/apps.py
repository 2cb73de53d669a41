from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and billing"

    def ready(self) -> None:
        from usage.services.accounts import account_name_sync

        # An index kept beside the user row, not a rule: every way a user is saved (registration,
        # admin, createsuperuser, commands) must keep its compared name, or one would go unchecked.
        post_save.connect(
            account_name_sync, sender=settings.AUTH_USER_MODEL, dispatch_uid="account_name_sync"
        )
