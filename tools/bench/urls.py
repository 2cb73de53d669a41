"""Pantheon's URLs plus the floor (``floor.py``), served side by side by the bench's gunicorn."""

from django.urls import path

from pantheon.urls import handler400, handler404, handler500
from pantheon.urls import urlpatterns as product_urlpatterns
from tools.bench.calls import FLOOR_PATH
from tools.bench.floor import FloorTurnView

urlpatterns = [
    *product_urlpatterns,
    path(FLOOR_PATH.lstrip("/"), FloorTurnView.as_view(), name="bench-floor-turn"),
]

__all__ = ["handler400", "handler404", "handler500", "urlpatterns"]
