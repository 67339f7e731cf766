"""Plot labels: placed beside their points without overlapping one another."""

import pytest

from adalink.bench.plots import label_points

plt = pytest.importorskip("matplotlib.pyplot")


def test_labels_of_points_on_top_of_each_other_do_not_overlap():
    fig, ax = plt.subplots(figsize=(4, 3))
    points = [("lora", 1.0, 5.0), ("dora", 1.02, 5.01), ("houlsby", 1.04, 4.99), ("pfeiffer", 1.0, 5.02), ("x", 3, 1)]
    ax.scatter([x for _, x, _ in points], [y for _, _, y in points])
    fig.tight_layout()
    label_points(ax, [(text, x, y, "normal") for text, x, y in points])
    renderer = fig.canvas.get_renderer()
    boxes = {note.get_text(): note.get_window_extent(renderer) for note in ax.texts}
    assert sorted(boxes) == sorted(text for text, _, _ in points)  # every label is written once
    names = sorted(boxes)
    assert not [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if boxes[a].overlaps(boxes[b])]
    plt.close(fig)
