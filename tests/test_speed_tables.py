"""The 224 px speed benchmark's summary (benchmarks/speed_224.py), on hand-made rows: the
÷ bare ratios the docs quote are medians over rounds, at equal steps."""

from benchmarks.speed_224 import summary


def _row(contender, steps, cold, cpu, param="pixel", lr=""):
    return dict(contender=contender, param=param, steps=steps, lr=lr, cold=cold, cpu=cpu)


def test_ratios_are_medians_over_rounds_against_the_bare_loop_at_equal_steps():
    rows = [
        _row("bare", 128, 10, 20),
        _row("bare", 128, 30, 22),  # a loaded round: the median ignores it
        _row("bare", 128, 12, 21),
        _row("project", 128, 13, 23, param="fourier"),
        _row("project", 128, 12, 25, param="fourier"),
        _row("project", 128, 60, 24, param="fourier"),
        _row("project", 64, 7, 11, param="fourier"),  # no bare loop at 64 steps
        {**_row("tkv", 128, 1, 1), "error": "worker exited 1"},  # failed runs are left out
    ]
    lines = summary(rows).splitlines()
    project = next(line for line in lines if line.startswith("| project:fourier:128 "))
    assert project.split("|")[2:7] == [" 3 ", " 13.0 ", " 24.0 ", " 1.08 ", " 1.14 "]
    assert next(line for line in lines if "project:fourier:64" in line).endswith("| – | – |")
    assert not any("tkv" in line for line in lines)
