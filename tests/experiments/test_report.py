"""The report document: each experiment's section appended once, then replaced."""

from adalink.experiments.report import update_document


def test_update_document_appends_then_replaces(tmp_path):
    doc = tmp_path / "d.md"
    update_document(doc, "x", "first")
    update_document(doc, "y", "other")
    update_document(doc, "x", "second")
    text = doc.read_text()
    assert "second" in text and "first" not in text and text.index("second") < text.index("other")
