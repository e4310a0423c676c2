"""bench/results_md.py: a bench script's section of bench/RESULTS.md, read and written back in one place."""

from __future__ import annotations

from bench_script import load

results_md = load("results_md.py")
START, END = "<!-- x:start (written by bench/x.py) -->", "<!-- x:end -->"


def test_a_new_section_goes_before_its_anchor_or_at_the_end(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\n## Later\n\nrest\n")
    results_md.put_section(path, START, END, f"{START}\n| a |\n{END}", before="## Later")
    assert path.read_text() == f"# Results\n\n{START}\n| a |\n{END}\n\n## Later\n\nrest\n"
    other = tmp_path / "other.md"
    other.write_text("# Results\n\ntext\n\n")
    results_md.put_section(other, START, END, f"{START}\n| a |\n{END}", before="## Not there")
    assert other.read_text() == f"# Results\n\ntext\n\n{START}\n| a |\n{END}\n"


def test_a_section_is_replaced_whole_and_nothing_around_it_moves(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(f"head\n\n{START}\n| old 1 |\n| old 2 |\n{END}\n\ntail {END}\n")
    assert results_md.section_lines(path.read_text(), START, END) == [START, "| old 1 |", "| old 2 |"]
    # a start marker given by its prefix (load-readahead.py's) finds the same section
    results_md.put_section(path, "<!-- x:start", END, f"{START}\n| new |\n{END}")
    assert path.read_text() == f"head\n\n{START}\n| new |\n{END}\n\ntail {END}\n"
    assert results_md.section_lines("no section here", START, END) == []
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]  # no temporary file left
