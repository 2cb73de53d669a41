"""Who answers a turn: manual @tags, roundtable order, and the manager's routing answer with every
fallback (the spec's "Turn modes"). Agents are built in memory: no database is needed."""

import json
import logging

import pytest

from orchestration.modes import agents_select_manual, agents_select_roundtable, routing_decision_parse
from rooms.models import Agent


def _room(*keys_and_positions: tuple[str, int]) -> list[Agent]:
    """A room's agents, in the order given (ids follow it)."""
    return [
        Agent(id=n, agent_key=key, name=key.title(), model_alias="deepseek", position=position)
        for n, (key, position) in enumerate(keys_and_positions, start=1)
    ]


# Listed out of position order on purpose: the first by position is "writer".
AGENTS = _room(("critic", 2), ("writer", 0), ("researcher", 1))
BY_KEY = {a.agent_key: a for a in AGENTS}


def keys(agents: list[Agent]) -> list[str]:
    return [a.agent_key for a in agents]


# Manual mode


def test_manual_mode_dispatches_tags_in_the_order_they_appear():
    selected = agents_select_manual(agents=AGENTS, user_input="@critic read this, then @writer revise it")
    assert keys(selected) == ["critic", "writer"]


def test_manual_mode_dispatches_each_tag_once():
    selected = agents_select_manual(agents=AGENTS, user_input="@writer @researcher @writer, @writer!")
    assert keys(selected) == ["writer", "researcher"]


def test_manual_mode_ignores_unknown_tags():
    selected = agents_select_manual(agents=AGENTS, user_input="@editor @writer @nobody please")
    assert keys(selected) == ["writer"]


def test_manual_mode_without_a_known_tag_selects_nobody():
    assert agents_select_manual(agents=AGENTS, user_input="@editor, what do you think?") == []
    assert agents_select_manual(agents=AGENTS, user_input="no tags at all") == []


def test_manual_tags_ignore_case():
    assert keys(agents_select_manual(agents=AGENTS, user_input="@Writer and @CRITIC")) == ["writer", "critic"]


def test_email_addresses_and_longer_words_are_not_tags():
    text = "mail writer@critic.org or ask @writers and @critic2"
    assert agents_select_manual(agents=AGENTS, user_input=text) == []


# Roundtable mode


def test_roundtable_answers_every_agent_in_position_order():
    assert keys(agents_select_roundtable(agents=AGENTS)) == ["writer", "researcher", "critic"]


def test_roundtable_agents_on_the_same_position_answer_in_creation_order():
    agents = _room(("b", 1), ("a", 1), ("c", 0))
    assert keys(agents_select_roundtable(agents=list(reversed(agents)))) == ["c", "b", "a"]


# Orchestrator mode: the manager's answer


def test_routing_keeps_the_managers_order_without_fallback():
    result = routing_decision_parse(raw='{"selected_agent_keys": ["critic", "researcher"]}', agents=AGENTS)
    assert keys(result.agents) == ["critic", "researcher"]
    assert result.used_fallback is False


def test_routing_drops_unknown_and_repeated_keys_keeping_order():
    raw = json.dumps({"selected_agent_keys": ["critic", "ghost", "writer", "critic", "ghost"]})
    result = routing_decision_parse(raw=raw, agents=AGENTS)
    assert keys(result.agents) == ["critic", "writer"]
    assert result.used_fallback is False


def test_routing_reads_keys_written_as_tags():
    result = routing_decision_parse(raw='{"selected_agent_keys": [" @Researcher "]}', agents=AGENTS)
    assert keys(result.agents) == ["researcher"] and result.used_fallback is False


def test_routing_accepts_the_legacy_single_key():
    result = routing_decision_parse(raw='{"selected_agent_key": "researcher"}', agents=AGENTS)
    assert keys(result.agents) == ["researcher"]
    assert result.used_fallback is False


def test_routing_list_wins_over_the_legacy_key_when_both_are_given():
    raw = '{"selected_agent_keys": ["critic", "researcher"], "selected_agent_key": "writer"}'
    assert keys(routing_decision_parse(raw=raw, agents=AGENTS).agents) == ["critic", "researcher"]


def test_routing_ignores_extra_fields():
    raw = '{"selected_agent_keys": ["critic"], "reasoning": "the critic knows"}'
    result = routing_decision_parse(raw=raw, agents=AGENTS)
    assert keys(result.agents) == ["critic"] and result.used_fallback is False


INVALID, NO_AGENT = "invalid JSON", "no known agent selected"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json at all", INVALID),
        ('{"selected_agent_keys": ["critic"]', INVALID),  # cut short
        ('["critic"]', INVALID),
        ('{"selected_agent_keys": "critic"}', INVALID),
        ('{"selected_agent_keys": [1, 2]}', INVALID),
        ('{"selected_agent_key": 2}', INVALID),
        ("{}", NO_AGENT),
        ('{"selected_agent_keys": []}', NO_AGENT),
        ('{"selected_agent_keys": null}', NO_AGENT),
        ('{"selected_agent_keys": ["ghost", "editor"]}', NO_AGENT),
        ('{"selected_agent_key": "ghost"}', NO_AGENT),
    ],
    ids=[
        "prose",
        "truncated",
        "bare-list",
        "string-not-list",
        "numbers",
        "number-key",
        "no-key",
        "empty-list",
        "null",
        "all-unknown",
        "legacy-unknown",
    ],
)
def test_unusable_routing_answer_falls_back_to_the_first_agent_by_position_and_logs(raw, reason, caplog):
    with caplog.at_level(logging.WARNING, logger="orchestration.modes"):
        result = routing_decision_parse(raw=raw, agents=AGENTS)
    assert result.agents == [BY_KEY["writer"]]
    assert result.used_fallback is True
    assert result.reason == reason
    assert len(caplog.records) == 1 and "falling back" in caplog.records[0].getMessage()


def test_failed_routing_call_falls_back_to_the_first_agent_by_position():
    result = routing_decision_parse(raw=None, agents=AGENTS)
    assert result.agents == [BY_KEY["writer"]]
    assert result.used_fallback is True and result.reason == "routing call failed"


def test_invalid_routing_answer_is_logged_in_one_short_line(caplog):
    raw = json.dumps({"selected_agent_keys": [{"key": "x" * 100} for _ in range(500)]})  # ~60 kB
    with caplog.at_level(logging.WARNING, logger="orchestration.modes"):
        result = routing_decision_parse(raw=raw, agents=AGENTS)
    assert result.used_fallback is True
    message = caplog.records[0].getMessage()
    assert len(message) < 200 and "\n" not in message


def test_unknown_keys_are_logged_as_a_sample_of_the_first_five(caplog):
    unknown = [f"ghost{n}" for n in range(50)]
    with caplog.at_level(logging.WARNING, logger="orchestration.modes"):
        routing_decision_parse(raw=json.dumps({"selected_agent_keys": unknown}), agents=AGENTS)
    message = caplog.records[0].getMessage()
    assert all(key in message for key in unknown[:5])
    assert "ghost5" not in message
