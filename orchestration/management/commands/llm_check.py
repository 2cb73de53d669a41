"""Check the configured LLM provider: one small call per purpose and deployment, with timing, tokens
and cost, then which deployments answered."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orchestration.llm.gateway import ChatMessage, LlmCallError, LlmGateway, LlmRequest
from orchestration.llm.registry import gateway_call_deadline_seconds, gateway_for_deployment, gateway_get
from orchestration.modes import routing_decision_parse
from orchestration.parsing import SummaryDraft
from orchestration.prompts import routing_prompt_build
from rooms.models import Agent
from usage.metering import charge_compute
from usage.selectors import PricedDeployment, catalog_list_active, priced_models_get


class Command(BaseCommand):
    help = (
        "Call the configured LLM provider once per purpose (reply, routing JSON, summary JSON) on every "
        "deployment of each alias, and say which deployments answered."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--models",
            default=settings.ORCHESTRATOR_MANAGER_MODEL_ALIAS,
            help="comma-separated catalog aliases to check (default: the manager model)",
        )
        parser.add_argument(
            "--all", action="store_true", dest="every", help="check every active catalog alias"
        )

    def handle(self, *args, models: str, every: bool, **options):
        default_gateway = gateway_get()
        aliases = [a.strip() for a in models.split(",") if a.strip()]
        if every:
            aliases = list(catalog_list_active(pricing=None).values_list("alias", flat=True))
        priced = priced_models_get(aliases=set(aliases))
        deadline = gateway_call_deadline_seconds()
        self.stdout.write(
            f"provider: {settings.LLM_PROVIDER} {settings.LLM_BASE_URL or '(built-in)'}; "
            f"each call may take up to {deadline:g} s"
        )
        failures = 0
        agents = [
            Agent(agent_key="alpha", name="Alpha", position=0),
            Agent(agent_key="beta", name="Beta", position=1),
        ]
        answered: dict[str, bool] = {}
        for alias in aliases:
            model = priced.get(alias)
            if model is None:
                self.stdout.write(self.style.ERROR(f"FAIL {alias}: not an active catalog model"))
                failures += 1
                continue
            for route in model.routes:
                label = f"{alias}@{route.name}" if route.name else alias
                try:
                    gateway = gateway_for_deployment(
                        base_url=route.base_url, api_key_env=route.api_key_env, default=default_gateway
                    )
                except LlmCallError as exc:
                    self.stdout.write(self.style.ERROR(f"FAIL {label}: {exc.code} {exc.message}"))
                    failures += 1
                    answered[label] = False
                    continue
                failed = self._check(label, route, gateway, agents)
                failures += failed
                answered[label] = failed == 0
        if answered:
            ok = [name for name, good in answered.items() if good]
            bad = [name for name, good in answered.items() if not good]
            self.stdout.write(f"answered: {', '.join(ok) or 'none'}; did not: {', '.join(bad) or 'none'}")
        if failures:
            raise CommandError(f"{failures} provider check{'' if failures == 1 else 's'} failed")

    def _check(self, alias: str, model: PricedDeployment, gateway: LlmGateway, agents: list[Agent]) -> int:
        """The three purposes on one deployment; returns how many failed."""
        failures = 0
        checks = [
            ("reply", (ChatMessage("user", "Reply with the single word: ready."),), False, None),
            (
                "routing",
                routing_prompt_build(agents=agents, user_input="@beta please"),
                True,
                lambda raw: not routing_decision_parse(raw=raw, agents=agents).used_fallback,
            ),
            (
                "summary",
                (
                    ChatMessage("system", 'Answer with strict JSON {"summary_text": "..."}.'),
                    ChatMessage("user", "Alice and Bob agreed to meet on Monday."),
                ),
                True,
                lambda raw: bool(SummaryDraft.model_validate_json(raw)),
            ),
        ]
        for purpose, messages, json_mode, validate in checks:
            request = LlmRequest(
                model_alias=alias.partition("@")[0],
                provider_model=model.provider_model,
                messages=messages,
                max_output_tokens=128,
                purpose="agent_reply" if purpose == "reply" else purpose,
                json_mode=json_mode,
            )
            self.stdout.write(f"…    {alias} {purpose}: calling {model.provider_model}")
            self.stdout.flush()
            try:
                response = gateway.complete(request)
                valid = validate(response.content) if validate else True
            except LlmCallError as exc:
                self.stdout.write(self.style.ERROR(f"FAIL {alias} {purpose}: {exc.code} {exc.message}"))
                failures += 1
                continue
            except ValueError as exc:
                self.stdout.write(
                    self.style.ERROR(f"FAIL {alias} {purpose}: invalid JSON ({type(exc).__name__})")
                )
                failures += 1
                continue
            cost = charge_compute(
                input_tokens=response.input_tokens,
                output_tokens=response.output_tokens,
                price=model.price,
                credits_per_usd=settings.CREDITS_PER_USD,
            ).cost_usd
            provider_cost = "-" if response.provider_cost_usd is None else response.provider_cost_usd
            estimated = " (estimated)" if response.tokens_estimated else ""
            line = (
                f"{alias} {purpose}: {response.latency_ms} ms, "
                f"{response.input_tokens}+{response.output_tokens} tokens{estimated}, {cost} USD"
                f" (provider: {provider_cost})"
            )
            if valid:
                self.stdout.write(self.style.SUCCESS("PASS ") + line)
            else:
                self.stdout.write(self.style.ERROR("FAIL ") + line + " — answer not usable, fallback needed")
                failures += 1
        return failures
