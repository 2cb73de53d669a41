"""The embedded default provider: deterministic, in the agent's voice, valid JSON for every helper."""

import json
from dataclasses import replace

from pydantic import BaseModel, ConfigDict

from orchestration.llm.gateway import ChatMessage, LlmRequest
from orchestration.llm.offline import OfflineGateway, word_pieces
from orchestration.llm.tokens import count_messages_tokens, count_text_tokens


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selected_agent_keys: list[str]


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary_text: str


class Extraction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key_facts: list[str]
    decisions: list[str]
    open_questions: list[str]
    action_items: list[str]


ROUTING_SYSTEM = (
    "You are the manager of a multi-agent chat room. Answer with strict JSON only.\n"
    "AGENT_KEYS: writer, critic, scout\n"
    "Agents:\n- writer: Writer\n- critic: Critic\n- scout: Scout"
)
TRANSCRIPT = (
    "Previous summary:\nAda keeps the light.\n\nNew turns:\n"
    "[Turn 1]\nUser: Where is the lighthouse? We decided to set it in 1920.\n"
    "Writer: It stands on a cliff. The keeper is Ada.\n\n"
    "Critic: We need to outline chapter two. Who narrates?\n\n"
    "[Turn 2]\nUser: @writer continue\nWriter: The storm came at night."
)


def req(text="Tell me about lighthouses.", *, purpose="agent_reply", system="You are Writer.", **kw):
    return LlmRequest(
        model_alias="deepseek",
        provider_model="deepseek/deepseek-chat",
        max_output_tokens=100,
        purpose=purpose,
        messages=(ChatMessage("system", system), ChatMessage("user", text), *kw.pop("after", ())),
        **kw,
    )


def routed(text: str, system: str = ROUTING_SYSTEM) -> list[str]:
    answer = OfflineGateway().complete(req(text, purpose="routing", system=system, json_mode=True))
    return Routing.model_validate_json(answer.content).selected_agent_keys


def test_same_request_gives_the_same_reply_and_generation_id():
    first = OfflineGateway().complete(req(agent_key="writer", agent_name="Writer"))
    again = OfflineGateway().complete(req(agent_key="writer", agent_name="Writer"))
    assert replace(again, latency_ms=first.latency_ms) == first
    assert first.generation_id.startswith("offline-")


def test_reply_is_in_the_agents_voice_about_the_users_message():
    writer = OfflineGateway().complete(req(agent_key="writer", agent_name="Writer")).content
    critic = OfflineGateway().complete(req(agent_key="critic", agent_name="Critic")).content
    assert writer.startswith('Writer here — on "Tell me about lighthouses."')
    assert critic.startswith("Critic here")
    assert "lighthouses" in writer and "lighthouses" in critic


def test_different_messages_get_different_replies():
    replies = {
        OfflineGateway().complete(req(f"Question number {i} about the harbour?", agent_key="writer")).content
        for i in range(6)
    }
    assert len(replies) == 6


def test_reply_acknowledges_agents_who_spoke_earlier_in_the_turn():
    earlier = (ChatMessage("assistant", "Critic: The opening is slow."),)
    reply = OfflineGateway().complete(req(agent_key="writer", agent_name="Writer", after=earlier)).content
    assert "Building on what Critic said" in reply


def test_usage_is_counted_with_tiktoken_and_not_estimated():
    request = req(agent_key="writer")
    response = OfflineGateway().complete(request)
    assert response.input_tokens == count_messages_tokens(m.content for m in request.messages)
    assert response.output_tokens == count_text_tokens(response.content)
    assert response.tokens_estimated is False and response.provider_cost_usd is None
    assert response.latency_ms < 100


def test_routing_picks_mentioned_agents_in_the_order_they_appear():
    assert routed("@scout first, then @critic") == ["scout", "critic"]


def test_routing_picks_agents_named_without_the_at_sign():
    assert routed("the critic should look, then the writer") == ["critic", "writer"]


def test_routing_ignores_unknown_mentions_and_repeats():
    assert routed("@nobody @scout and @scout again") == ["scout"]


def test_routing_falls_back_to_the_first_listed_agent():
    assert routed("what do you all think?") == ["writer"]


def test_routing_reads_the_prompt_the_turn_engine_builds():
    from orchestration.prompts import routing_prompt_build
    from rooms.models import Agent

    agents = [Agent(agent_key=k, name=k.title(), position=i) for i, k in enumerate(["writer", "critic"])]
    messages = routing_prompt_build(agents=agents, user_input="I need @critic on this")
    answer = OfflineGateway().complete(
        LlmRequest("deepseek", "deepseek/deepseek-chat", messages, 100, purpose="routing", json_mode=True)
    )
    assert Routing.model_validate_json(answer.content).selected_agent_keys == ["critic"]


def test_summary_is_valid_json_built_from_the_conversation():
    answer = OfflineGateway().complete(
        req(TRANSCRIPT, purpose="summary", system="Summarize.", json_mode=True)
    )
    summary = Summary.model_validate_json(answer.content).summary_text
    assert summary.startswith("Ada keeps the light.")  # the previous summary carries on
    assert "Writer: It stands on a cliff." in summary
    assert "User: Where is the lighthouse?" in summary
    assert "Writer: The storm came at night." in summary
    assert "[Turn" not in summary and "New turns:" not in summary


def test_summary_stays_bounded_on_a_long_conversation():
    long = "New turns:\n" + "\n".join(f"User: Sentence number {i} is here." for i in range(2000))
    answer = OfflineGateway().complete(req(long, purpose="summary", json_mode=True))
    summary = Summary.model_validate_json(answer.content).summary_text
    assert len(summary) <= 1500 and "Sentence number 1999" in summary


def test_extraction_sorts_sentences_into_valid_lists():
    text = (
        "We decided to set it in 1920. Who is the narrator? We need to outline chapter two. "
        "Ada is the keeper."
    )
    answer = OfflineGateway().complete(req(text, purpose="extraction", json_mode=True))
    extraction = Extraction.model_validate_json(answer.content)
    assert extraction.open_questions == ["Who is the narrator?"]
    assert extraction.decisions == ["We decided to set it in 1920."]
    assert extraction.action_items == ["We need to outline chapter two."]
    assert extraction.key_facts == ["Ada is the keeper."]


def test_summary_then_extraction_keeps_questions_and_decisions():
    gateway = OfflineGateway()
    summary = json.loads(gateway.complete(req(TRANSCRIPT, purpose="summary", json_mode=True)).content)
    answer = gateway.complete(req(summary["summary_text"], purpose="extraction", json_mode=True))
    extraction = Extraction.model_validate_json(answer.content)
    assert "User: Where is the lighthouse?" in extraction.open_questions
    assert "Critic: Who narrates?" in extraction.open_questions
    assert "User: We decided to set it in 1920." in extraction.decisions
    assert "Critic: We need to outline chapter two." in extraction.action_items


def test_json_mode_agent_reply_is_valid_json():
    answer = OfflineGateway().complete(req(agent_key="writer", json_mode=True))
    assert json.loads(answer.content)["reply"].startswith("Writer here")


def test_stream_hands_on_the_reply_word_by_word_and_returns_what_complete_returns():
    request = req(agent_key="writer", agent_name="Writer")
    deltas: list[str] = []
    streamed = OfflineGateway().stream(request, on_delta=deltas.append)
    whole = OfflineGateway().complete(request)
    assert replace(streamed, latency_ms=whole.latency_ms) == whole
    assert "".join(deltas) == whole.content
    assert deltas == word_pieces(whole.content) and len(deltas) == len(whole.content.split())
    assert deltas[:3] == ["Writer", " here", " —"]


def test_stream_of_a_json_answer_joins_into_valid_json():
    deltas: list[str] = []
    OfflineGateway().stream(req(TRANSCRIPT, purpose="summary", json_mode=True), on_delta=deltas.append)
    assert Summary.model_validate_json("".join(deltas)).summary_text


def test_word_pieces_give_the_text_back_exactly():
    for text in ["", "   ", "one", "  lead, two\n\nthree\x00 end\t ", "tab\tseparated"]:
        assert "".join(word_pieces(text)) == text
        assert "" not in word_pieces(text)
    assert word_pieces(" a  b ") == [" a", "  b", " "]
