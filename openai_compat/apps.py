from django.apps import AppConfig


class OpenaiCompatConfig(AppConfig):
    name = "openai_compat"
    label = "openai_compat"
    verbose_name = "OpenAI-compatible endpoint"
