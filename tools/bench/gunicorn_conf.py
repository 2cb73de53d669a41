"""Gunicorn for ``make bench``: the production settings (the repository's ``gunicorn.conf.py``,
hooks included) plus a marker file per worker once it has loaded the app, in ``BENCH_READY_DIR``.
The bench waits for every worker's marker, so its first request is a cold request to a ready
server, not one queued behind a booting worker."""

import os
import runpy
from pathlib import Path

_settings = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
globals().update({name: value for name, value in _settings.items() if not name.startswith("_")})


def post_worker_init(worker) -> None:
    if callable(_settings.get("post_worker_init")):
        _settings["post_worker_init"](worker)
    Path(os.environ["BENCH_READY_DIR"], str(worker.pid)).touch()


# Several servers may run on one machine (the bench, tests): none needs gunicorn's control socket,
# whose default path is shared by every gunicorn of the user.
control_socket_disable = True
