from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "orchestration"

    def ready(self) -> None:
        # The system checks, and the Celery tasks the services enqueue by name.
        from orchestration import checks, tasks  # noqa: F401
