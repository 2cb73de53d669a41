"""The fingerprint rules: what of a resent history counts, and that it chains like a stored session."""

import hashlib
import json
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from openai_compat.fingerprint import (
    EMPTY,
    TranscriptMessage,
    content_normalize,
    fingerprint_extend,
    fingerprint_of,
    transcript_normalize,
    turn_fingerprint,
)
from openai_compat.services import _key_fingerprint

U, A = "user", "assistant"


def m(role: str, content: str) -> TranscriptMessage:
    return TranscriptMessage(role, content)


def test_a_history_fingerprints_like_the_turns_that_made_it():
    stored = turn_fingerprint(EMPTY, user_input="Hello", reply="Writer: Hi.")
    stored = turn_fingerprint(stored, user_input="More", reply="Writer: Sure.\n\nCritic: No.")
    resent = [m(U, "Hello"), m(A, "Writer: Hi."), m(U, "More"), m(A, "Writer: Sure.\n\nCritic: No.")]
    assert fingerprint_of(transcript_normalize(resent)) == stored


def test_system_developer_and_tool_messages_are_left_out():
    plain = [m(U, "Hello"), m(A, "Writer: Hi.")]
    noisy = [
        m("system", "Be brief."),
        m(U, "Hello"),
        m("developer", "x"),
        m(A, "Writer: Hi."),
        m("tool", "{}"),
    ]
    assert transcript_normalize(noisy) == plain


def test_an_unanswered_user_message_is_left_out_like_a_failed_turn():
    history = [m(U, "Hello"), m(A, "Writer: Hi."), m(U, "this one failed"), m(U, "try again")]
    assert transcript_normalize(history) == [m(U, "Hello"), m(A, "Writer: Hi."), m(U, "try again")]


def test_an_empty_assistant_message_counts_as_no_answer():
    history = [m(U, "failed"), m(A, "   "), m(U, "Hello")]
    assert transcript_normalize(history) == [m(U, "Hello")]


def test_content_is_compared_as_stored_outer_whitespace_line_endings_and_nul_aside():
    stored = turn_fingerprint(EMPTY, user_input="Hello\nthere", reply="Writer: Hi.")
    resent = [m(U, "  Hello\r\nthere \n"), m(A, "Writer: Hi.\x00\n")]
    assert fingerprint_of(transcript_normalize(resent)) == stored


def test_inner_differences_and_roles_change_the_fingerprint():
    base = fingerprint_of([m(U, "Hello"), m(A, "Writer: Hi.")])
    assert fingerprint_of([m(U, "Hello"), m(A, "Writer: Hi!")]) != base
    assert fingerprint_of([m(A, "Hello"), m(U, "Writer: Hi.")]) != base
    assert fingerprint_of([m(U, "Hello"), m(A, "Writer: Hi."), m(U, "x")]) != base


def test_message_boundaries_cannot_be_forged_by_moving_text():
    assert fingerprint_of([m(U, "ab"), m(A, "c")]) != fingerprint_of([m(U, "a"), m(A, "bc")])


def test_an_empty_history_has_the_empty_fingerprint():
    assert fingerprint_of(transcript_normalize([m("system", "Be brief.")])) == EMPTY


# --- the fast forms compute what the plain ones did ------------------------------------------------

TEXTS = st.lists(
    st.sampled_from(["a", " ", "\n", "\r\n", "\r", "\x00", '"', "\\", "é", "🙂", "\ud800", "\t"]), max_size=8
)
MESSAGES = st.lists(
    st.builds(TranscriptMessage, st.sampled_from([U, A, U, A, "system", "tool"]), TEXTS.map("".join)),
    max_size=8,
)


def reference_normalize(messages):
    kept = [
        TranscriptMessage(m.role, content_normalize(m.content))
        for m in messages
        if m.role in (U, A) and content_normalize(m.content)
    ]
    return [
        message
        for position, message in enumerate(kept)
        if not (message.role == U and position + 1 < len(kept) and kept[position + 1].role == U)
    ]


@given(MESSAGES)
def test_a_history_normalizes_as_the_rules_say(messages):
    assert transcript_normalize(messages) == reference_normalize(messages)


@given(st.sampled_from([EMPTY, "ab" * 32]), st.sampled_from([U, A]), TEXTS.map("".join))
def test_a_link_is_the_sha256_of_the_json_of_fingerprint_role_and_content(previous, role, content):
    link = json.dumps([previous, role, content_normalize(content)])
    expected = hashlib.sha256(link.encode()).hexdigest()
    assert fingerprint_extend(previous, TranscriptMessage(role, content)) == expected


@given(MESSAGES, st.sampled_from(["room-1", "room-1:manual", 'room-"é"']), st.sampled_from([None, "", "abc"]))
def test_an_idempotency_keys_fingerprint_is_the_sha256_of_the_json_of_the_request(
    messages, model_id, session
):
    body = [model_id, str(session or ""), [[m.role, content_normalize(m.content)] for m in messages]]
    expected = hashlib.sha256(json.dumps(body).encode()).hexdigest()
    model = SimpleNamespace(id=model_id)
    assert _key_fingerprint(model=model, messages=messages, session_id=session) == expected
