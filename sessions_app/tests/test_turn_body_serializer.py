"""The turn body's serializer is built once per worker thread (sessions_app/api/views.py): building
its fields costs about what writing a body does."""

import os
import subprocess
import sys
import textwrap


def test_the_greenlets_of_a_gevent_worker_share_one_turn_body_serializer():
    """Under the shipped worker class (gevent, monkey-patched), ``threading.local`` is per greenlet and
    a greenlet serves one connection: a thread-local serializer was built again for every new client."""
    code = textwrap.dedent(
        """
        from gevent import monkey

        monkey.patch_all()
        import django
        import gevent

        django.setup()
        from sessions_app.api.views import _turn_body_serializer

        first, second = gevent.spawn(_turn_body_serializer), gevent.spawn(_turn_body_serializer)
        gevent.joinall([first, second], raise_error=True)
        print("shared" if first.value is second.value else "per greenlet")
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.split()[-1] == "shared"
