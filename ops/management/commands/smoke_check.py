"""Staging smoke run against a deployed Pantheon: health, auth, a room with agents, a session, one
turn in each mode, the summary trigger, usage, and cleanup — with a pass/fail line per step.

It signs in as one smoke account (``--username``, registered on the first run only, with
``--password`` or ``SMOKE_CHECK_PASSWORD``) or with ``--token``, and removes the sessions and rooms
it created (and, on the smoke account, rooms an interrupted run left). Usage rows stay: they are the
record of what the calls cost.
"""

import contextlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
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
        except urllib.error.URLError as exc:
            host = urllib.parse.urlsplit(self.base).netloc
            raise StepFailed(f"{method} {path}: {host} unreachable ({exc.reason})") from exc
        except TimeoutError as exc:
            raise StepFailed(f"{method} {path}: no answer within {self.timeout:g} s") from exc
        payload = json.loads(raw) if raw else {}
        if status not in expect:
            detail = payload.get("detail") if isinstance(payload, dict) else raw[:200]
            raise StepFailed(f"{method} {path} answered {status} (expected {expect}): {detail}")
        return payload


ROOM_NAME = "Smoke check"


class Command(BaseCommand):
    help = "Smoke-test a deployed Pantheon end to end; exits non-zero if any step fails."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", required=True, help="e.g. https://pantheon.example.com")
        parser.add_argument(
            "--username",
            default="smoke-check",
            help="the smoke account (registered on the first run, reused after; default smoke-check)",
        )
        parser.add_argument(
            "--password",
            default=os.environ.get("SMOKE_CHECK_PASSWORD", ""),
            help="the smoke account's password (default: $SMOKE_CHECK_PASSWORD)",
        )
        parser.add_argument("--token", help="use this API token instead of the smoke account")
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
        username: str,
        password: str,
        token: str | None,
        timeout: float,
        summary_wait: float,
        keep: bool,
        **options,
    ):
        if not token and not password:
            raise CommandError("Give --token, or the smoke account's --password (or SMOKE_CHECK_PASSWORD).")
        client = Client(base=base_url.rstrip("/") + "/api/v1", timeout=timeout, token=token or "")
        state: dict = {}
        results: list[tuple[str, bool]] = []

        def step(name: str, fn) -> None:
            self.stdout.write(f"…    {name}")
            self.stdout.flush()
            started = time.monotonic()
            try:
                note, ok = fn() or "", True
            except StepFailed as exc:
                note, ok = str(exc), False
            mark = self.style.SUCCESS("PASS") if ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark} {name:<22} {(time.monotonic() - started) * 1000:7.0f} ms  {note}")
            results.append((name, ok))
            if not ok:
                raise StepFailed(note)

        try:
            step("health", lambda: self._health(client))
            step("auth", lambda: self._auth(client, username=username, password=password, token=token))
            if not token:
                step("leftovers", lambda: self._leftovers(client))
            step("room and agents", lambda: self._room(client, state))
            step("session", lambda: self._session(client, state))
            for mode in ("manual", "roundtable", "orchestrator"):
                step(f"turn: {mode}", lambda mode=mode: self._turn(client, state, mode))
            step("summary trigger", lambda: self._summary(client, state, summary_wait))
            step("usage", lambda: self._usage(client, state))
        except StepFailed:
            pass  # reported by step(); the verdict below says which
        finally:
            if state.get("room") and not keep:
                with contextlib.suppress(StepFailed):
                    step("cleanup", lambda: self._cleanup(client, state))

        failed = [name for name, ok in results if not ok]
        if failed:
            raise CommandError(f"smoke check failed: {', '.join(failed)}")
        self.stdout.write(self.style.SUCCESS(f"smoke check passed ({len(results)} steps)"))

    def _health(self, client: Client) -> str:
        body = client.call("GET", "/health")
        if body.get("status") != "ok":
            raise StepFailed(f"health: {body}")
        return f"database {body['database']}, broker {body['broker']}"

    def _auth(self, client: Client, *, username: str, password: str, token: str | None) -> str:
        note = ""
        if not token:
            credentials = {"username": username, "password": password}
            body = client.call("POST", "/auth/token", credentials, expect=(200, 400))
            if "token" not in body:  # first run: the smoke account does not exist yet
                body = client.call("POST", "/auth/register", credentials, expect=(201, 400))
                if "token" not in body:
                    raise StepFailed(
                        f"cannot sign in as {username} and cannot register it: {body.get('detail')}"
                    )
                note = " (smoke account created)"
            client.token = body["token"]
        me = client.call("GET", "/auth/me")
        return (
            f"as {me['username']}{note}, {me['credits_available']} credits available "
            f"(top up with credit_adjust when low)"
        )

    def _leftovers(self, client: Client) -> str:
        """Rooms an interrupted run of the smoke account left behind are removed first."""
        query = urllib.parse.urlencode({"name": ROOM_NAME})
        rooms = [r for r in client.call("GET", f"/rooms?{query}")["results"] if r["name"] == ROOM_NAME]
        for room in rooms:
            client.call("DELETE", f"/rooms/{room['id']}", expect=(204,))
        return f"removed {len(rooms)} room(s) left by an earlier run" if rooms else "none"

    def _room(self, client: Client, state: dict) -> str:
        models = client.call("GET", "/models")
        if not models:
            raise StepFailed("the model catalog is empty")
        aliases = [m["alias"] for m in models]
        room = client.call("POST", "/rooms", {"name": ROOM_NAME}, expect=(201,))
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
        room = state["room"]
        if state.get("session"):
            client.call("DELETE", f"/rooms/{room}/sessions/{state['session']}", expect=(204,))
        client.call("DELETE", f"/rooms/{room}", expect=(204,))
        client.call("GET", f"/rooms/{room}", expect=(404,))
        return "session and room deleted (usage kept)" if state.get("session") else "room deleted"
