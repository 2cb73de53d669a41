"""System checks: an LLM provider switched on but missing its settings fails at start-up."""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register(checks.Tags.compatibility)
def llm_provider_configured(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from orchestration.llm.registry import gateway_get

    try:
        gateway_get()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint="See .env.example, section LLM provider.", id="pantheon.E001")]
    return []
