"""Long loops of commands show progress: a bar redrawn in place on a terminal, plain lines in logs."""

import io

from django.core.management.base import OutputWrapper

from pantheon.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(stream, total: int) -> str:
    progress = Progress(OutputWrapper(stream), label="checked", every=2, width=4)
    for done in range(total + 1):
        progress(done, total)
    return stream.getvalue()


def test_a_terminal_gets_a_bar_redrawn_in_place():
    text = run(Terminal(), 4)
    assert text.count("\r") == 5 and text.count("\n") == 1  # one line, ended when done
    assert "\r  checked [----] 0/4" in text and text.endswith("\r  checked [####] 4/4\n")


def test_a_log_gets_a_line_every_few_items_and_at_the_end():
    assert run(io.StringIO(), 5).splitlines() == ["  checked: 2/5", "  checked: 4/5", "  checked: 5/5"]


def test_nothing_to_do_prints_nothing():
    assert run(io.StringIO(), 0) == ""
