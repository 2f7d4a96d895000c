"""Figures name what they show: legends keep every label, PNGs open."""

from PIL import Image

from preimage.io import figures


def _legend_texts(monkeypatch, draw):
    seen = []
    monkeypatch.setattr(
        figures,
        "save_figure",
        lambda fig, path, dpi=110: seen.append(
            [
                t.get_text()
                for ax in fig.axes
                if ax.get_legend()
                for t in ax.get_legend().get_texts()
            ]
        ),
    )
    draw()
    return seen[0]


def test_layer_names_with_a_leading_underscore_stay_in_the_legend(monkeypatch, tmp_path):
    # matplotlib drops label= values that start with "_", and every EfficientNet layer does
    groups = {"_blocks.2": [0.1, 0.2, 0.3], "_blocks.5": [0.4, 0.5]}
    texts = _legend_texts(
        monkeypatch,
        lambda: figures.histograms(groups, str(tmp_path / "h.png"), xlabel="x", log=False),
    )
    assert texts == ["_blocks.2 (median 0.2, n=3)", "_blocks.5 (median 0.45, n=2)"]
    pairs = {"_blocks.2": ([0.1, 0.2], [1.0, 2.0]), "_bn0": ([0.3], [0.5])}
    texts = _legend_texts(
        monkeypatch, lambda: figures.scatter(pairs, str(tmp_path / "s.png"), xlabel="x", ylabel="y")
    )
    assert texts == ["_blocks.2 (n=2)", "_bn0 (n=1)"]


def test_histogram_png_opens(tmp_path):
    path = tmp_path / "h.png"
    figures.histograms({"_blocks.2": [1.0, 2.0, 4.0]}, str(path), xlabel="x")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
