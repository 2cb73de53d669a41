"""``python -m tools.bench`` (``make bench``): see the package's docstring."""

import argparse
import datetime
import os
import sys
from pathlib import Path
from typing import Any

from tools.bench import load, report, stack

LOG = stack.ROOT / "var" / "bench-gunicorn.log"


def _lengths(text: str) -> list[int]:
    try:
        lengths = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of prior turn counts") from None
    if not lengths or min(lengths) < 0:
        raise argparse.ArgumentTypeError("prior turn counts are 0 or more")
    return lengths


def options_parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    parser.add_argument("--turns", type=int, default=30, help="calls of each variant per session length")
    parser.add_argument("--lengths", type=_lengths, default=[0, 10, 1000], help="prior turns, e.g. 0,10,1000")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="the fake LLM's latency under load")
    parser.add_argument("--clients", type=int, default=32, help="load clients (one user and session each)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per variant and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating load rounds of each variant")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load not counted")
    parser.add_argument("--output", type=Path, default=stack.ROOT / "var" / "bench.json")
    parser.add_argument(
        "--scenario",
        choices=("all", "turns", "capacity"),
        default="all",
        help="turns: latency and load; capacity: the bursts (a few minutes); all: both",
    )
    parser.add_argument(
        "--capacity",
        type=_lengths,
        default=[500, 500, 200],
        help="capacity bursts: plain turns, streamed turns, three-agent roundtables",
    )
    parser.add_argument(
        "--capacity-latency-ms", type=float, default=10_000.0, help="the LLM's latency in bursts"
    )
    parser.add_argument("--capacity-timeout", type=float, default=60.0, help="a burst client's timeout (s)")
    parser.add_argument(
        "--capacity-configs",
        type=lambda text: text.split(","),
        default=["shipped", "thread-bound"],
        help="the serving configurations the bursts run against: shipped, thread-bound or both",
    )
    args = parser.parse_args(argv)
    if unknown := set(args.capacity_configs) - {"shipped", "thread-bound"}:
        parser.error(f"--capacity-configs: unknown {', '.join(sorted(unknown))} (shipped, thread-bound)")
    if args.turns < 1 or args.clients < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--turns, --clients and --duration must be positive, --warmup not negative")
    return args


def django_prepare(env: dict[str, str]) -> None:
    """This process runs the same Django as the server: it migrates and writes the fixtures."""
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def latency_run(port: int, fake: Any, client: Any, lengths: list[int], turns: int) -> dict[str, Any]:
    from openai import OpenAI

    from tools.bench.calls import Api
    from tools.bench.latency import Probe, latency_measure

    llm = OpenAI(base_url=fake.base_url, api_key="bench-key", max_retries=0, timeout=30)
    with Api(port) as api:
        return latency_measure(Probe(api, fake, llm, client), lengths, turns)


def load_request(port: int, fake: Any, client: Any) -> dict:
    """What a load client's turn sends the LLM (the floor replays it under load)."""
    from tools.bench.calls import Api

    fake.reset()
    with Api(port) as api:
        api.turn(client.token, client.session, "@writer load turn 0")
    return fake.requests[0].body


def load_run(port: int, fake: Any, clients: list, args: argparse.Namespace) -> dict[str, Any]:
    """Pantheon's turns and the floor's, each for the same time against the same server, in
    alternating rounds (turn, floor, floor, turn, …): how gunicorn's workers happen to share the
    clients' keep-alive connections varies from one round to the next, and so does the machine, so
    neither variant gets the luckier draw every time."""
    sent = load_request(port, fake, clients[0])
    fake.set_latency(args.latency_ms)
    rounds: dict[str, list[dict]] = {"turn": [], "floor": []}
    try:
        for index in range(args.rounds):
            for variant in ("turn", "floor") if index % 2 == 0 else ("floor", "turn"):
                plan = load.load_plan(
                    port, clients, variant=variant, sent=sent, warmup=args.warmup, duration=args.duration
                )
                rounds[variant].append(load.load_measure(plan))
    finally:
        fake.set_latency(0)
        fake.reset()
    return report.load_figures(
        load.rounds_merge(rounds["turn"]),
        load.rounds_merge(rounds["floor"]),
        gunicorn=stack.gunicorn_settings(),
        latency_ms=args.latency_ms,
    )


def measure(args: argparse.Namespace, database_url: str, broker_url: str) -> dict[str, Any]:
    from orchestration.testing.fake_server import FakeLlmServer

    fake = FakeLlmServer().start()
    env = stack.environment(database_url=database_url, broker_url=broker_url, llm_base_url=fake.base_url)
    server = None
    try:
        django_prepare(env)
        from tools.bench import fixtures

        figures: dict[str, Any] = {"startup_s": None, "latency": None, "load": None, "capacity": None}
        if args.scenario in ("all", "turns"):
            latency_client = fixtures.latency_client(args.lengths)
            load_clients = fixtures.load_clients(args.clients)
            fixtures.database_settle()
            server = stack.Gunicorn(env, LOG)
            figures["startup_s"] = server.start()
            figures["latency"] = latency_run(server.port, fake, latency_client, args.lengths, args.turns)
            figures["load"] = load_run(server.port, fake, load_clients, args)
            server.stop()
            server = None
        if args.scenario in ("all", "capacity"):
            from tools.bench.capacity import CONFIGS, capacity_run

            figures["capacity"] = capacity_run(
                env=env,
                fake=fake,
                database_url=database_url,
                counts=tuple(args.capacity[:3]),
                latency_ms=args.capacity_latency_ms,
                timeout=args.capacity_timeout,
                log_dir=LOG.parent,
                configs={name: CONFIGS[name] for name in args.capacity_configs},
            )
        return figures
    finally:
        if server is not None:
            server.stop()
        fake.stop()
        stack.queue_purge(broker_url)


def main(argv: list[str] | None = None) -> int:
    args = options_parse(argv)
    database_url = os.environ.get("BENCH_DATABASE_URL", stack.DEFAULT_DB)
    broker_url = os.environ.get("BENCH_BROKER_URL", stack.DEFAULT_BROKER)
    stack.database_ensure(database_url)
    load_start = os.getloadavg()[0]
    figures = measure(args, database_url, broker_url)
    result = {
        "run": {
            "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
            "gunicorn": stack.gunicorn_settings(),
            "startup_s": round(figures["startup_s"], 2) if figures["startup_s"] is not None else None,
            "turns": args.turns,
            "lengths": args.lengths,
        },
        "latency": figures["latency"],
        "load": figures["load"],
        "capacity": figures["capacity"],
    }
    report.report_write(result, args.output)
    if result["latency"] is not None:
        print("\n".join(report.table_lines(result)))
    if result["capacity"] is not None:
        from tools.bench.capacity import capacity_lines

        print("\n".join(capacity_lines(result["capacity"])))
    print(f"load average: {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"written to {args.output} (gunicorn's log: {LOG})")
    return report.exit_status(result) if result["latency"] is not None else 0


if __name__ == "__main__":
    sys.exit(main())
