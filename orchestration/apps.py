from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "orchestration"

    def ready(self) -> None:
        from orchestration import checks  # noqa: F401  (registers the system checks)
