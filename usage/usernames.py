"""One name, one account: how a username is compared.

``username_normalize`` is the name a check and the unique index compare: NFKC (``ｆｕｌｌ`` is ``full``,
``ﬁ`` is ``fi``) then case folding (``Σ``, ``σ`` and ``ς`` are one letter; ``lower()`` keeps ``ς``).

``username_skeleton`` is what the name looks like (Unicode TS #39's skeleton): each character
replaced by the prototype it is confusable with, so ``аdmin`` (Cyrillic а) and ``admin`` share one.
A new name whose skeleton is an existing name's is refused. The table of confusables is the one of
the ``confusable_homoglyphs`` package (Unicode's confusables.txt): a source character lists its one
prototype, a prototype lists its sources; a pair that only lists each other maps both to the lesser.
"""

import unicodedata
from functools import cache

from confusable_homoglyphs.confusables import confusables_data


def username_normalize(username: str) -> str:
    return unicodedata.normalize("NFKC", username).casefold()


@cache
def _prototype(char: str) -> str:
    homoglyphs = confusables_data.get(char)
    if not homoglyphs or len(homoglyphs) != 1:
        return char  # not confusable, or a prototype with several sources
    other = homoglyphs[0]["c"].replace("\u200e", "")  # the table's direction marks around RTL glyphs
    back = confusables_data.get(other)
    if back and len(back) == 1 and back[0]["c"].replace("\u200e", "") == char:
        return min(char, other)  # each only lists the other: one of them, the same for both
    return other


def username_skeleton(username: str) -> str:
    decomposed = unicodedata.normalize("NFD", username_normalize(username))
    mapped = "".join(_prototype(char) for char in decomposed)
    return unicodedata.normalize("NFD", mapped).casefold()
