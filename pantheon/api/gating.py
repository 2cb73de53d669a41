"""Turn requests do their CPU work through the process's work gate (``pantheon/work_gate.py``)."""

from django.urls import Resolver404, get_resolver

from orchestration.capacity import process_busy_check, process_full
from pantheon.work_gate import work_gate


class WorkGatedMixin:
    """A view whose POST runs a turn (``WorkGateMiddleware`` enters the gate for it). Refused at once
    (503 ``server_busy``, in the view's error shape) when the process's turns — running, plus those
    queued at the gate — already fill the cap."""

    work_gated = True

    def initial(self, request, *args, **kwargs):
        if request.method == "POST":
            process_busy_check(queued=work_gate().waiting)
        return super().initial(request, *args, **kwargs)


def _gated(request) -> bool:
    if request.method != "POST":
        return False
    try:
        match = get_resolver().resolve(request.path_info)
    except Resolver404:
        return False
    return getattr(getattr(match.func, "cls", None), "work_gated", False)


class WorkGateMiddleware:
    """First of the middleware: a POST to a ``WorkGatedMixin`` view enters the gate before anything
    else is done for it (parsing, authentication), so that a burst of turns waits at the gate, not
    in the event loop ahead of every other request; it leaves when the view has answered, whatever
    happened (a streamed turn has handed its place on by then). A process already full skips the
    gate: the view refuses it at once."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not _gated(request):
            return self.get_response(request)
        gate = work_gate()
        if not process_full(queued=gate.waiting):
            gate.enter()
        try:
            return self.get_response(request)
        finally:
            gate.quit()
