"""``make bench``: what a turn through Pantheon costs over a direct LLM call, in one run.

Against the fake OpenAI-compatible server with a fixed latency, on PostgreSQL:
- a direct ``openai`` client call (the floor: what any client pays for the model);
- a full single-agent manual turn through the HTTP API, served by gunicorn;
interleaved call by call, at several session lengths (prior turns). Reports medians, the ratio, the
milliseconds Pantheon adds, and SQL queries per turn (from the ``Server-Timing`` header).

    python -m tools.bench [--latency-ms 50] [--turns 30] [--lengths 0,10,1000]
"""

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/pantheon_bench"
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"


def _database_ensure(url: str) -> None:
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(url)
    with psycopg.connect(
        host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"], dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def _queue_purge(broker_url: str) -> None:
    """Drop the summary tasks the run queued (no worker consumes them here)."""
    from kombu import Connection

    with Connection(broker_url, connect_timeout=2) as conn:
        conn.default_channel.queue_purge("celery")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fixtures(prior_lengths: list[int]) -> dict:
    """A user, a room with one agent, and one session per length with that many prior turns."""
    from rest_framework.authtoken.models import Token

    from orchestration.context import turn_context_tokens
    from rooms.models import Agent, Room
    from sessions_app.models import ChatSession, Message, Turn
    from usage.services.accounts import user_register

    user = user_register(username=f"bench-{uuid.uuid4().hex[:12]}", password=uuid.uuid4().hex)
    credit_account_open_or_top_up(user)
    token = Token.objects.create(user=user)
    room = Room.objects.create(owner=user, name="Bench room")
    Agent.objects.create(room=room, agent_key="writer", name="Writer", model_alias="deepseek", position=0)
    sessions = {}
    for length in prior_lengths:
        session = ChatSession.objects.create(room=room, title=f"{length} prior turns", last_turn_index=length)
        turns, messages = [], []
        for i in range(1, length + 1):
            user_input = f"Prior question number {i}: what should the chapter {i} be about?"
            output = f"Writer: Chapter {i} should follow the lighthouse keeper through the storm, part {i}."
            turn = Turn(
                session=session,
                turn_index=i,
                mode="manual",
                user_input=user_input,
                assistant_output=output,
                status="completed",
                responding_agent_keys=["writer"],
                context_tokens=turn_context_tokens(user_input=user_input, assistant_output=output),
            )
            turns.append(turn)
            messages += [
                Message(session=session, turn=turn, role="user", content=user_input, order=0, mode="manual"),
                Message(
                    session=session,
                    turn=turn,
                    role="assistant",
                    agent_key="writer",
                    agent_name="Writer",
                    model_alias="deepseek",
                    content=output,
                    order=1,
                    mode="manual",
                ),
            ]
        Turn.objects.bulk_create(turns, batch_size=500)
        Message.objects.bulk_create(messages, batch_size=1000)
        sessions[length] = str(session.pk)
    return {"token": token.key, "sessions": sessions}


def credit_account_open_or_top_up(user) -> None:
    from usage.models import CreditAccount

    CreditAccount.objects.filter(user=user).update(balance=Decimal("1000000000"))


SERVER_TIMING = re.compile(r'(\w+);dur=([\d.]+)(?:;desc="(\d+) queries")?')


def _api_turn(conn: http.client.HTTPConnection, token: str, session_id: str, text: str) -> tuple[float, dict]:
    body = json.dumps({"user_input": text, "mode": "manual"})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    t0 = time.perf_counter()
    conn.request("POST", f"/api/v1/sessions/{session_id}/turns", body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    elapsed = time.perf_counter() - t0
    if response.status != 201:
        raise RuntimeError(f"turn answered {response.status}: {payload[:300]!r}")
    figures = {}
    for name, dur, queries in SERVER_TIMING.findall(response.getheader("Server-Timing", "")):
        figures[name] = float(dur)
        if queries:
            figures["queries"] = int(queries)
    return elapsed, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--lengths", default="0,10,1000")
    parser.add_argument("--output", default=str(ROOT / "var" / "bench.json"))
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]

    from orchestration.testing.fake_server import FakeLlmServer

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    _database_ensure(database_url)
    fake = FakeLlmServer(latency_ms=args.latency_ms)
    fake.start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pantheon.settings.base",
        "DATABASE_URL": database_url,
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": fake.base_url,
        "LLM_API_KEY": "bench-key",
        "LLM_MAX_RETRIES": "0",
        "API_THROTTLE_USER": "100000/min",
        "API_THROTTLE_TURNS": "100000/min",
        # As in production, summaries are queued for a worker (none runs here), not run in the request.
        "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )

    import django

    django.setup()
    from openai import OpenAI

    fixtures = _fixtures(lengths)
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "pantheon.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(100):
            try:
                conn.request("GET", "/api/v1/health")
                conn.getresponse().read()
                break
            except OSError:
                conn.close()
                time.sleep(0.1)
        client = OpenAI(base_url=fake.base_url, api_key="bench-key", max_retries=0, timeout=30)
        results = []
        for length in lengths:
            session_id = fixtures["sessions"][length]
            direct, api, queries, llm, app, db, prompt_tokens = [], [], [], [], [], [], []
            _api_turn(conn, fixtures["token"], session_id, "@writer warm up")  # warm-up
            for i in range(args.turns):
                elapsed, figures = _api_turn(conn, fixtures["token"], session_id, f"@writer draft part {i}")
                api.append(elapsed)
                queries.append(figures.get("queries", 0))
                llm.append(figures.get("llm", 0.0))
                app.append(figures.get("app", 0.0))
                db.append(figures.get("db", 0.0))
                # The floor: the very request the turn sent, straight from the openai client.
                sent = fake.requests[-1].body
                t0 = time.perf_counter()
                completion = client.chat.completions.create(
                    model=sent["model"], messages=sent["messages"], max_tokens=sent["max_tokens"]
                )
                direct.append(time.perf_counter() - t0)
                prompt_tokens.append(completion.usage.prompt_tokens)
            fake.reset()
            d, a = statistics.median(direct) * 1000, statistics.median(api) * 1000
            results.append(
                {
                    "prior_turns": length,
                    "prompt_tokens": int(statistics.median(prompt_tokens)),
                    "direct_ms": round(d, 2),
                    "turn_ms": round(a, 2),
                    "ratio": round(a / d, 3),
                    "added_ms": round(a - d, 2),
                    "queries_per_turn": statistics.median(queries),
                    "queries_min": min(queries),
                    "queries_max": max(queries),
                    "server_llm_ms": round(statistics.median(llm), 2),
                    "server_db_ms": round(statistics.median(db), 2),
                    "server_app_ms": round(statistics.median(app), 2),
                }
            )
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        fake.stop()
        _queue_purge(env["CELERY_BROKER_URL"])

    report = {"latency_ms": args.latency_ms, "turns_per_length": args.turns, "results": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"fake LLM latency {args.latency_ms} ms, {args.turns} turns per session length (medians)")
    header = (
        f"{'prior turns':>11} {'prompt tok':>10} {'direct ms':>10} {'turn ms':>9} {'ratio':>6}"
        f" {'added ms':>9} {'queries':>8}"
    )
    header += f" {'llm ms':>7} {'db ms':>6} {'app ms':>7}"
    print(header)
    for r in results:
        print(
            f"{r['prior_turns']:>11} {r['prompt_tokens']:>10} {r['direct_ms']:>10.1f} {r['turn_ms']:>9.1f} "
            f"{r['ratio']:>6.2f} "
            f"{r['added_ms']:>9.1f} {r['queries_per_turn']:>8} {r['server_llm_ms']:>7.1f} "
            f"{r['server_db_ms']:>6.1f} {r['server_app_ms']:>7.1f}"
        )
    print(f"written to {args.output}")
    growth = {r["queries_max"] for r in results} | {r["queries_min"] for r in results}
    if len(growth) > 1:
        print("WARNING: queries per turn vary with session length:", sorted(growth))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
