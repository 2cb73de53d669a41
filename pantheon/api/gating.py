"""Turn requests do their CPU work through the process's work gate (``pantheon/work_gate.py``)."""

from orchestration.capacity import process_busy_check
from pantheon.work_gate import work_gate


class WorkGatedMixin:
    """A view whose POST runs a turn: the request enters the gate before its authentication (after a
    check that the process is not past its cap of turns, counting those queued at the gate: overload
    is a 503 at once, not a wait) and leaves it when its view returns, whatever happened. The turn
    leaves it itself while it waits on a model."""

    def initial(self, request, *args, **kwargs):
        if request.method == "POST":
            gate = work_gate()
            process_busy_check(queued=gate.waiting)
            gate.enter()
        return super().initial(request, *args, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            work_gate().quit()
