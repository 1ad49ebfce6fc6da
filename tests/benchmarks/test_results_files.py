"""A rerun of a benchmark rewrites its figures and keeps what a person wrote under them."""

from __future__ import annotations

from benchmarks.machine import HAND_WRITTEN, write_results


def test_a_rerun_replaces_the_figures_and_keeps_the_notes(tmp_path):
    results = tmp_path / "results" / "speed.md"
    write_results(results, "# Speed\n\n| run | s |\n| a | 3.1 |\n", "\n\n## Notes\n\n(to be written)\n")
    assert results.read_text().endswith(HAND_WRITTEN + "\n\n## Notes\n\n(to be written)\n")

    written = results.read_text().replace("(to be written)", "3.1 s is the tracker's cost.")
    results.write_text(written)
    write_results(results, "# Speed\n\n| run | s |\n| a | 2.5 |\n", "\n\n## Notes\n\n(to be written)\n")

    text = results.read_text()
    assert "| a | 2.5 |" in text and "| a | 3.1 |" not in text
    assert text.endswith(HAND_WRITTEN + "\n\n## Notes\n\n3.1 s is the tracker's cost.\n")
    assert text.count(HAND_WRITTEN) == 1
