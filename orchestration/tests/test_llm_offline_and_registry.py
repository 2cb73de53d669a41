import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel

from orchestration.llm.gateway import ChatMessage, LlmRequest
from orchestration.llm.offline import OfflineGateway
from orchestration.llm.openai_provider import OpenAIGateway
from orchestration.llm.registry import gateway_call_deadline_seconds, gateway_get
from orchestration.modes import routing_prompt_build
from rooms.models import Agent


class Extraction(BaseModel):
    key_facts: list[str]
    decisions: list[str]
    open_questions: list[str]
    action_items: list[str]


def req(
    purpose="agent_reply", text="Tell me about lighthouses.", system="You are Writer.", **kw
) -> LlmRequest:
    return LlmRequest(
        model_alias="deepseek",
        provider_model="deepseek/deepseek-chat",
        max_output_tokens=100,
        purpose=purpose,
        messages=(ChatMessage("system", system), ChatMessage("user", text)),
        **kw,
    )


def test_offline_replies_are_deterministic_and_in_the_agents_voice():
    gateway = OfflineGateway()
    first = gateway.complete(req(agent_key="writer", agent_name="Writer"))
    again = gateway.complete(req(agent_key="writer", agent_name="Writer"))
    other = gateway.complete(req(agent_key="critic", agent_name="Critic"))
    assert first.content == again.content and "Writer" in first.content and "lighthouses" in first.content
    assert "Critic" in other.content
    assert first.input_tokens > 0 and first.output_tokens > 0


def test_offline_routing_picks_mentioned_agents_in_order():
    agents = [
        Agent(agent_key=k, name=k.title(), position=i) for i, k in enumerate(["writer", "critic", "scout"])
    ]
    messages = routing_prompt_build(agents=agents, user_input="@scout first, then the critic")
    answer = OfflineGateway().complete(
        LlmRequest("deepseek", "deepseek/deepseek-chat", messages, 100, purpose="routing", json_mode=True)
    )
    assert json.loads(answer.content) == {"selected_agent_keys": ["scout", "critic"]}


def test_offline_summary_and_extraction_are_valid_json():
    text = "We decided to set it in 1920. Who is the narrator? We need to outline chapter two."
    summary = json.loads(OfflineGateway().complete(req("summary", text, json_mode=True)).content)
    assert summary["summary_text"]
    extraction = Extraction.model_validate_json(OfflineGateway().complete(req("extraction", text)).content)
    assert extraction.open_questions == ["Who is the narrator?"]
    assert extraction.decisions == ["We decided to set it in 1920."]
    assert extraction.action_items == ["We need to outline chapter two."]


def test_registry_is_offline_by_default_and_openai_when_configured(settings):
    settings.LLM_PROVIDER = "offline"
    assert isinstance(gateway_get(), OfflineGateway)
    settings.LLM_PROVIDER, settings.LLM_BASE_URL, settings.LLM_API_KEY = (
        "openai",
        "http://127.0.0.1:9/v1",
        "k",
    )
    gateway = gateway_get()
    assert isinstance(gateway, OpenAIGateway)
    assert gateway.client.max_retries == settings.LLM_MAX_RETRIES
    assert gateway.client.timeout == settings.LLM_TIMEOUT_SECONDS


def test_registry_refuses_an_incomplete_openai_configuration(settings):
    settings.LLM_PROVIDER, settings.LLM_BASE_URL, settings.LLM_API_KEY = "openai", "", ""
    with pytest.raises(ImproperlyConfigured):
        gateway_get()


def test_call_deadline_bounds_retries(settings):
    settings.LLM_TIMEOUT_SECONDS, settings.LLM_MAX_RETRIES = 10.0, 2
    assert gateway_call_deadline_seconds() == 10.0 * 3 + 2 * 2.0
