"""Long loops of commands show progress: a bar redrawn in place on a terminal, plain lines in logs."""

import io
import logging

from django.core.management.base import OutputWrapper

from pantheon.progress import Progress, logs_held


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


def test_off_a_terminal_a_count_reported_twice_is_written_once():
    stream = io.StringIO()
    progress = Progress(OutputWrapper(stream), label="checked", every=2)
    for done in (0, 1, 2, 2, 3, 4, 4):
        progress(done, 4)
    assert stream.getvalue().splitlines() == ["  checked: 2/4", "  checked: 4/4"]


def test_held_log_lines_follow_the_block_and_still_reach_the_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with logs_held("pantheon.tests.held"):
            logging.getLogger("pantheon.tests.held.child").warning("a log line")
            stream.write("the report\n")
        stream.write("after\n")
    finally:
        root.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["the report", "a log line", "after"]
    assert logging.getLogger("pantheon.tests.held").propagate
