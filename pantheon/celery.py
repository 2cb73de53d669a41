import os

from celery import Celery, signals

from pantheon.logging import log_context_current, log_context_replace

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pantheon.settings.base")

app = Celery("pantheon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The log ids of whoever enqueues a task (a request: its id, user, session, turn) travel in the
# message headers, so the worker's lines for that task carry them too.
LOG_CONTEXT_HEADER = "pantheon_log_context"


@signals.before_task_publish.connect
def _log_context_send(headers=None, **kwargs) -> None:
    if headers is not None:
        headers[LOG_CONTEXT_HEADER] = log_context_current()


@signals.task_prerun.connect
def _log_context_receive(task=None, **kwargs) -> None:
    if task is not None and not task.request.is_eager:  # eager: already in the caller's context
        log_context_replace(task.request.get(LOG_CONTEXT_HEADER) or {})


@signals.task_postrun.connect
def _log_context_clear(task=None, **kwargs) -> None:
    if task is not None and not task.request.is_eager:
        log_context_replace({})
