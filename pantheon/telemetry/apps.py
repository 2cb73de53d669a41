from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    """Operators' view of the domain: the per-turn log line and the Prometheus metrics, both fed by
    ``pantheon.observability`` records (the domain never imports this app)."""

    name = "pantheon.telemetry"
    label = "telemetry"
    verbose_name = "Telemetry"

    def ready(self) -> None:
        from pantheon.observability import TurnObserved, listen
        from pantheon.telemetry.logs import turn_log_write
        from pantheon.telemetry.metrics import metrics_listen

        listen(TurnObserved, turn_log_write)
        metrics_listen()
