"""A new session's title: the first message on one line, cut to ``TITLE_MAX_CHARS`` at a word."""

from hypothesis import given
from hypothesis import strategies as st

from openai_compat.services import TITLE_MAX_CHARS, _title_from

PIECES = st.sampled_from(
    ["a", "bc", "é", " ", "  ", "\n", "\t", "\x1c", "\x85", "\xa0", "\u2028", "\u3000", "x" * 30]
)


def reference_title(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= TITLE_MAX_CHARS:
        return line
    return line[: TITLE_MAX_CHARS - 1].rsplit(" ", 1)[0].rstrip() + "…"


@given(st.lists(PIECES, max_size=120).map("".join))
def test_the_title_is_the_first_message_on_one_line_cut_at_a_word(text):
    assert _title_from(text) == reference_title(text)


def test_a_client_task_is_titled_by_its_first_line():
    assert _title_from("### Task:\n Suggest tags \n for the chat", task=True) == "[client task] Suggest tags"
    assert _title_from("### Task:", task=True) == "[client task]"
    assert _title_from("### Task: x", task=False) == "### Task: x"
