"""Latency with the fake LLM at 0 ms: the first request after start, then per session length the
direct call, the floor and a Pantheon turn alternating call by call (and, at the first length, a
three-agent roundtable beside them), so machine noise hits all of them alike."""

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tools.bench.calls import Api, BenchError, Timed, direct
from tools.bench.fixtures import ROUNDTABLE, Client

SERVER_PARTS = ("llm", "db", "app")


@dataclass
class Series:
    """The samples of one variant: client-side milliseconds, and what Server-Timing said."""

    ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    server: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, seconds: float, server: dict[str, float] | None = None) -> None:
        self.ms.append(seconds * 1000)
        if server is not None:
            self.queries.append(int(server.get("queries", 0)))
            for part in SERVER_PARTS:
                self.server[part].append(server.get(part, 0.0))

    @property
    def median(self) -> float:
        return statistics.median(self.ms)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median_ms": round(self.median, 2),
            "samples_ms": [round(x, 2) for x in self.ms],
        }
        if self.queries:
            out["queries"] = statistics.median(self.queries)
            out["queries_min"], out["queries_max"] = min(self.queries), max(self.queries)
            out["server_ms"] = {part: round(statistics.median(v), 2) for part, v in self.server.items()}
        return out


class Probe:
    """Runs each variant once, recording what the fake server received."""

    def __init__(self, api: Api, fake: Any, llm: Any, client: Client) -> None:
        self.api, self.fake, self.llm, self.client = api, fake, llm, client

    def turn(self, session_id: str, text: str, *, mode: str = "manual", calls: int = 1) -> tuple[Timed, list]:
        """A Pantheon turn, and the bodies of the ``calls`` LLM requests it made."""
        self.fake.reset()
        timed = self.api.turn(self.client.token, session_id, text, mode=mode)
        sent = [request.body for request in self.fake.requests]
        if len(sent) != calls:
            raise BenchError(f"a {mode} turn made {len(sent)} LLM calls, expected {calls}")
        return timed, sent

    def direct(self, sent: list[dict]) -> tuple[float, int]:
        """The turn's requests replayed by the ``openai`` client: seconds in all, and the prompt
        tokens of the last."""
        replies = [direct(self.llm, body) for body in sent]
        return sum(seconds for seconds, _ in replies), replies[-1][1]

    def floor(self, sent: dict) -> Timed:
        return self.api.floor(self.client.token, self.client.floor_session, sent)


def cold_measure(probe: Probe) -> dict[str, Any]:
    """The very first request the server gets: a turn in an empty session. The fake LLM answers one
    call of the bench's own first, so its first answer (its tokenizer loading, say) is not counted
    as the server's."""
    warm_up = {"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": "warm up"}]}
    direct(probe.llm, warm_up)
    probe.fake.reset()
    timed, _ = probe.turn(probe.client.session, "@writer the first turn after start")
    return {"turn_ms": round(timed.seconds * 1000, 2), "server_ms": timed.server}


def length_measure(probe: Probe, length: int, turns: int, *, roundtable: bool) -> dict[str, Any]:
    session_id = probe.client.sessions_by_length[length]
    series: dict[str, Series] = defaultdict(Series)
    prompt_tokens: list[int] = []
    for i in range(-1, turns):  # the first round warms each variant up and is not counted
        samples, tokens = _round(probe, session_id, i, roundtable=roundtable)
        if i >= 0:
            for name, (seconds, server) in samples.items():
                series[name].add(seconds, server)
            prompt_tokens.append(tokens)
    return _length_figures(length, series, prompt_tokens)


def _round(probe: Probe, session_id: str, i: int, *, roundtable: bool) -> tuple[dict[str, tuple], int]:
    """One call of each variant; the direct call and the floor (both replaying the turn's request)
    swap places every round."""
    samples: dict[str, tuple] = {}
    timed, sent = probe.turn(session_id, f"@writer draft part {i}")
    samples["turn"] = (timed.seconds, timed.server)
    for variant in ("direct", "floor") if i % 2 == 0 else ("floor", "direct"):
        if variant == "direct":
            seconds, tokens = probe.direct(sent)
            samples["direct"] = (seconds, None)
        else:
            floor = probe.floor(sent[0])
            samples["floor"] = (floor.seconds, floor.server)
    if roundtable:
        table, table_sent = probe.turn(
            probe.client.roundtable_session,
            f"Round {i}: what next?",
            mode="roundtable",
            calls=len(ROUNDTABLE),
        )
        samples["roundtable"] = (table.seconds, table.server)
        samples["roundtable_direct"] = (probe.direct(table_sent)[0], None)
    return samples, tokens


def _length_figures(length: int, series: dict[str, Series], prompt_tokens: list[int]) -> dict[str, Any]:
    direct_ms = series["direct"].median
    floor_added = series["floor"].median - direct_ms
    turn_added = series["turn"].median - direct_ms
    figures: dict[str, Any] = {
        "prior_turns": length,
        "prompt_tokens": int(statistics.median(prompt_tokens)),
        **{name: s.summary() for name, s in series.items()},
        "floor_added_ms": round(floor_added, 2),
        "turn_added_ms": round(turn_added, 2),
        "added_ratio": _ratio(turn_added, floor_added),
    }
    if "roundtable" in series:
        table_added = series["roundtable"].median - series["roundtable_direct"].median
        figures["roundtable_added_ms"] = round(table_added, 2)
        figures["roundtable_vs_single"] = _ratio(table_added, turn_added)
    return figures


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def latency_measure(probe: Probe, lengths: list[int], turns: int) -> dict[str, Any]:
    cold = cold_measure(probe)
    results = [
        length_measure(probe, length, turns, roundtable=index == 0) for index, length in enumerate(lengths)
    ]
    cold["warm_turn_ms"] = results[0]["turn"]["median_ms"]
    cold["cold_vs_warm"] = _ratio(cold["turn_ms"], cold["warm_turn_ms"])
    return {"cold": cold, "results": results}
