"""Token counting: tiktoken's offline encoding, each text encoded once while a turn recounts it."""

from orchestration.llm import tokens


def test_counts_follow_the_chat_framing():
    assert tokens.count_text_tokens("") == 0
    assert tokens.count_message_tokens("") == tokens.TOKENS_PER_MESSAGE
    words = tokens.count_text_tokens("hello world")
    assert words == 2
    assert tokens.count_messages_tokens(["hello world", ""]) == (
        tokens.TOKENS_PER_REPLY + 2 * tokens.TOKENS_PER_MESSAGE + words
    )


def test_a_text_counted_again_is_not_encoded_again(monkeypatch):
    encoding = tokens._encoding()
    encoded: list[int] = []

    class Spy:
        def encode(self, text, **kwargs):
            encoded.append(len(text))
            return encoding.encode(text, **kwargs)

    monkeypatch.setattr(tokens, "_encoding", lambda: Spy())
    tokens.count_text_tokens.cache_clear()
    long_input = "The keeper climbs the stairs. " * 3000
    first = tokens.count_message_tokens(long_input)
    assert [tokens.count_message_tokens(long_input) for _ in range(5)] == [first] * 5
    assert encoded == [len(long_input)]
    tokens.count_message_tokens(long_input + "!")  # another text is encoded
    assert encoded == [len(long_input), len(long_input) + 1]
    tokens.count_text_tokens.cache_clear()


def test_a_text_is_cut_to_the_tokens_it_may_take():
    from orchestration.llm.tokens import count_text_tokens, text_within_tokens

    short = "A lighthouse keeper."
    assert text_within_tokens(short, 100) == short
    long = "word " * 5000
    cut = text_within_tokens(long, 300)
    assert count_text_tokens(cut) <= 300 < count_text_tokens(long)
    assert cut.startswith("word word") and cut.endswith("[… cut to fit the window]")
