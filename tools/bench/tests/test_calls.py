"""The bench's direct call replays a turn's request body for body; Server-Timing is read as sent."""

import pytest
from openai import OpenAI

from orchestration.llm.gateway import ChatMessage, LlmRequest
from tools.bench.calls import direct, server_timing_parse


def test_server_timing_gives_each_duration_and_the_query_count():
    header = 'llm;dur=4.5, db;dur=2.0;desc="21 queries", app;dur=8.3, total;dur=14.8'

    assert server_timing_parse(header) == {"llm": 4.5, "db": 2.0, "queries": 21, "app": 8.3, "total": 14.8}


@pytest.mark.parametrize("json_mode", [False, True])
def test_direct_replay_sends_the_body_pantheon_sent(fake_llm, openai_gateway_make, json_mode):
    gateway = openai_gateway_make(temperature=0.7)
    request = LlmRequest(
        model_alias="deepseek",
        provider_model="deepseek/deepseek-chat",
        messages=(ChatMessage("system", "You are the writer."), ChatMessage("user", "@writer go on")),
        max_output_tokens=512,
        json_mode=json_mode,
    )
    gateway.complete(request)
    sent = fake_llm.requests[0].body

    seconds, prompt_tokens = direct(OpenAI(base_url=fake_llm.base_url, api_key="k", max_retries=0), sent)

    assert fake_llm.requests[1].body == sent
    assert seconds > 0 and prompt_tokens > 0
