"""``tools/check_numbers.py``: the repository's manifest agrees with its sources, and a number that no longer agrees
with its source (or is gone from its document) fails the check, naming the document, the text and the source."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_numbers", ROOT / "tools" / "check_numbers.py")
assert _spec is not None and _spec.loader is not None
check_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_numbers)

MANIFEST = r"""
- doc: doc.md
  text: "accuracy 0.818 against 0.705"
  value: "accuracy {a:.3f} against {b:.3f}"
  sources:
    a: {json: run.json, path: [metrics, score]}
    b: {json: run.json, path: [baseline, 0]}
- doc: doc.md
  text: "96 of 96"
  value: "{v}"
  source: {file: log.txt, regex: 'equal: (\d+ of \d+)'}
- doc: doc.md
  text: "84.5 points"
  value: "{v:.1f} points"
  source: {table: report.md, heading: "## Scores", row: [minilm, adalink], column: Accuracy,
           regex: '^([\d.]+)', number: true}
"""


DOC = "The demo reaches accuracy 0.818\nagainst 0.705; 96 of 96."  # a line break inside the quoted text


def _repo(tmp_path: Path, score: float = 0.8183, doc: str = DOC) -> Path:
    (tmp_path / "run.json").write_text(json.dumps({"metrics": {"score": score}, "baseline": [0.7048]}))
    (tmp_path / "log.txt").write_text("header\nequal: 96 of 96\n")
    (tmp_path / "report.md").write_text(
        "# Report\n\n## Scores\n\n| Model | Method | Accuracy |\n|---|---|---|\n"
        "| minilm | **adalink** | 84.53 ± 1.72 |\n"
    )
    (tmp_path / "doc.md").write_text(doc + " It scores 84.5 points.\n")
    (tmp_path / "numbers.yaml").write_text(MANIFEST)
    return tmp_path


def test_the_repository_manifest_agrees_with_its_sources():
    count, problems = check_numbers.check(ROOT, ROOT / "docs" / "numbers.yaml")
    assert count > 50 and problems == []


def test_agreeing_numbers_pass_whitespace_and_line_breaks_aside(tmp_path):
    root = _repo(tmp_path)
    assert check_numbers.check(root, root / "numbers.yaml") == (3, [])
    assert check_numbers.main(["--root", str(root), "--manifest", "numbers.yaml"]) == 0


def test_a_number_whose_source_changed_fails_naming_the_doc_the_text_and_the_source(tmp_path, capsys):
    root = _repo(tmp_path, score=0.865)
    _, problems = check_numbers.check(root, root / "numbers.yaml")
    assert len(problems) == 1
    assert problems[0].startswith("doc.md: 'accuracy 0.818 against 0.705': the source gives 'accuracy 0.865 against")
    assert "run.json" in problems[0] and "0.865" in problems[0]
    assert check_numbers.main(["--root", str(root), "--manifest", "numbers.yaml"]) == 1
    assert "1 disagree with their source" in capsys.readouterr().out


def test_a_number_gone_from_its_document_fails(tmp_path):
    root = _repo(tmp_path, doc="The demo reaches accuracy 0.865 against 0.705; 96 of 96.")
    _, problems = check_numbers.check(root, root / "numbers.yaml")
    assert problems == [
        "doc.md: 'accuracy 0.818 against 0.705': no longer in the document (its source gives "
        "'accuracy 0.818 against 0.705')"
    ]


def test_a_source_that_cannot_be_read_fails_with_what_is_missing(tmp_path):
    root = _repo(tmp_path)
    (root / "log.txt").write_text("nothing here\n")
    (root / "report.md").write_text("# Report\n\n## Scores\n\n| Model | Method | Score |\n|---|---|---|\n")
    (root / "run.json").unlink()
    _, problems = check_numbers.check(root, root / "numbers.yaml")
    assert [p.split(": its source cannot be read: ")[1] for p in problems] == [
        "no file run.json",
        r"regex 'equal: (\\d+ of \\d+)' does not match 'nothing here\n'",
        "report.md, table after '## Scores': no column 'Accuracy' in ['Model', 'Method', 'Score']",
    ]
