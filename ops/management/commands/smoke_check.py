"""Staging smoke run against a deployed Pantheon: health, auth, a room with agents, a session, one
turn in each mode, the summary trigger, usage, and cleanup — with a pass/fail line per step."""

import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

from django.core.management.base import BaseCommand, CommandError


class StepFailed(Exception):
    pass


@dataclass
class Client:
    base: str
    timeout: float
    token: str = ""
    calls: list = field(default_factory=list)

    def call(
        self, method: str, path: str, body: dict | None = None, expect: tuple[int, ...] = (200,)
    ) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, TimeoutError) as exc:
            raise StepFailed(f"{method} {path}: {exc}") from exc
        payload = json.loads(raw) if raw else {}
        if status not in expect:
            detail = payload.get("detail") if isinstance(payload, dict) else raw[:200]
            raise StepFailed(f"{method} {path} answered {status} (expected {expect}): {detail}")
        return payload


class Command(BaseCommand):
    help = "Smoke-test a deployed Pantheon end to end; exits non-zero if any step fails."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", required=True, help="e.g. https://pantheon.example.com")
        parser.add_argument("--token", help="use this API token instead of registering a smoke user")
        parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
        parser.add_argument(
            "--summary-wait",
            type=float,
            default=0.0,
            help="also wait this long for the triggered summary to appear (needs a worker)",
        )
        parser.add_argument("--keep", action="store_true", help="do not delete the smoke room afterwards")

    def handle(
        self,
        *args,
        base_url: str,
        token: str | None,
        timeout: float,
        summary_wait: float,
        keep: bool,
        **options,
    ):
        client = Client(base=base_url.rstrip("/") + "/api/v1", timeout=timeout, token=token or "")
        state: dict = {}
        results: list[tuple[str, bool, str, float]] = []

        def step(name: str, fn) -> None:
            started = time.monotonic()
            try:
                note = fn() or ""
                results.append((name, True, note, time.monotonic() - started))
            except StepFailed as exc:
                results.append((name, False, str(exc), time.monotonic() - started))
                raise

        try:
            step("health", lambda: self._health(client))
            step("auth", lambda: self._auth(client, token))
            step("room and agents", lambda: self._room(client, state))
            step("session", lambda: self._session(client, state))
            for mode in ("manual", "roundtable", "orchestrator"):
                step(f"turn: {mode}", lambda mode=mode: self._turn(client, state, mode))
            step("summary trigger", lambda: self._summary(client, state, summary_wait))
            step("usage", lambda: self._usage(client, state))
        except StepFailed:
            pass  # recorded by step(); the report below says which
        finally:
            if state.get("room") and not keep:
                with contextlib.suppress(StepFailed):
                    step("cleanup", lambda: self._cleanup(client, state))

        for name, ok, note, seconds in results:
            mark = self.style.SUCCESS("PASS") if ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark} {name:<22} {seconds * 1000:7.0f} ms  {note}")
        failed = [name for name, ok, _, _ in results if not ok]
        if failed:
            raise CommandError(f"smoke check failed: {', '.join(failed)}")
        self.stdout.write(self.style.SUCCESS(f"smoke check passed ({len(results)} steps)"))

    def _health(self, client: Client) -> str:
        body = client.call("GET", "/health")
        if body.get("status") != "ok":
            raise StepFailed(f"health: {body}")
        return f"database {body['database']}, broker {body['broker']}"

    def _auth(self, client: Client, token: str | None) -> str:
        if not token:
            name = f"smoke-{uuid.uuid4().hex[:10]}"
            body = client.call(
                "POST", "/auth/register", {"username": name, "password": uuid.uuid4().hex}, expect=(201,)
            )
            client.token = body["token"]
        me = client.call("GET", "/auth/me")
        return f"as {me['username']}, balance {me['credit_balance']}"

    def _room(self, client: Client, state: dict) -> str:
        models = client.call("GET", "/models")
        if not models:
            raise StepFailed("the model catalog is empty")
        aliases = [m["alias"] for m in models]
        room = client.call("POST", "/rooms", {"name": "Smoke check"}, expect=(201,))
        state["room"] = room["id"]
        for key, alias in (("alpha", aliases[0]), ("beta", aliases[min(1, len(aliases) - 1)])):
            client.call(
                "POST",
                f"/rooms/{room['id']}/agents",
                {
                    "agent_key": key,
                    "name": key.title(),
                    "model_alias": alias,
                    "role_prompt": "Answer briefly.",
                },
                expect=(201,),
            )
        return f"room {room['id']} with agents on {aliases[0]}, {aliases[min(1, len(aliases) - 1)]}"

    def _session(self, client: Client, state: dict) -> str:
        session = client.call("POST", f"/rooms/{state['room']}/sessions", {"title": "smoke"}, expect=(201,))
        state["session"] = session["id"]
        return session["id"]

    def _turn(self, client: Client, state: dict, mode: str) -> str:
        text = {
            "manual": "@alpha @beta say hello",
            "roundtable": "One line each, please.",
            "orchestrator": "Who should answer this?",
        }[mode]
        turn = client.call(
            "POST", f"/sessions/{state['session']}/turns", {"user_input": text, "mode": mode}, expect=(201,)
        )
        if turn["status"] != "completed":
            raise StepFailed(f"{mode} turn is {turn['status']}: {turn['agent_errors']}")
        state["last_index"] = turn["turn_index"]
        state["triggered"] = turn["summary_triggered"]
        return f"turn {turn['turn_index']} answered by {', '.join(turn['responding_agent_keys'])}"

    def _summary(self, client: Client, state: dict, wait: float) -> str:
        for _ in range(12):
            if state.get("triggered"):
                break
            self._turn(client, state, "manual")
        if not state.get("triggered"):
            raise StepFailed("no turn marked a summary as due")
        note = f"due at turn {state['last_index']}"
        deadline = time.monotonic() + wait
        while wait:
            summaries = client.call("GET", f"/sessions/{state['session']}/summaries")["results"]
            if summaries:
                return note + f"; summary through turn {summaries[0]['covers_through_turn_index']} present"
            if time.monotonic() > deadline:
                raise StepFailed(note + f"; no summary after {wait:.0f} s (is a worker running?)")
            time.sleep(1)
        return note

    def _usage(self, client: Client, state: dict) -> str:
        usage = client.call("GET", f"/sessions/{state['session']}/usage")
        totals = usage["totals"]
        if not totals["events"]:
            raise StepFailed("no usage events recorded")
        return f"{totals['events']} events, {totals['cost_usd']} USD, {totals['credits_burned']} credits"

    def _cleanup(self, client: Client, state: dict) -> str:
        client.call("DELETE", f"/rooms/{state['room']}", expect=(204,))
        client.call("GET", f"/rooms/{state['room']}", expect=(404,))
        return "room deleted"
