"""Progress: a bar that moves on a terminal, exactly one line per finished run in a log."""

import io

from rich.console import Console

from simulator import progress


def run_steps(console, *, step=None):
    with progress.bar("fgd seed 42: in-process", None, console=console, step=step) as advance:
        for done in range(0, 900, 100):
            advance(0, completed=done, total=916)
        advance(1, description="fgd seed 42: 916 events, 4.3 s in-process", completed=916, total=916)


def test_a_log_gets_one_line_per_run_saying_which_of_how_many():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    run_steps(console, step=(3, 16))
    run_steps(console, step=(4, 16))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[3/16] fgd seed 42: 916 events, 4.3 s in-process (")
    assert lines[1].startswith("[4/16] ")


def test_many_runs_in_one_bar_count_up_to_their_total_in_a_log():
    out = io.StringIO()
    with progress.bar("2 runs", 2, console=Console(file=out, force_terminal=False, width=200)) as advance:
        advance(1, "a seed 1")
        advance(1, "b seed 1")
    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == ["[1/2] a seed 1", "[2/2] b seed 1"]


def test_on_a_terminal_the_bar_ends_at_its_total():
    out = io.StringIO()
    run_steps(Console(file=out, force_terminal=True, width=200))
    assert "916/916" in out.getvalue() and "fgd seed 42: 916 events" in out.getvalue()


def test_quiet_prints_nothing():
    out = io.StringIO()
    with progress.bar("x", 3, console=Console(file=out), quiet=True) as advance:
        advance(1, "x")
        advance(0, completed=2, total=3)
    assert out.getvalue() == ""
