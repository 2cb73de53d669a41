"""The fingerprint rules: what of a resent history counts, and that it chains like a stored session."""

from openai_compat.fingerprint import (
    EMPTY,
    TranscriptMessage,
    fingerprint_of,
    transcript_normalize,
    turn_fingerprint,
)

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
