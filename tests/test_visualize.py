"""Channel visualizations at several depths drive their channels beyond natural images."""

import torch

import preimage


def test_visualizations_beat_natural_patches(lite0):
    targets = ["_blocks.1:0-3", "_blocks.6:0-3", "_blocks.13:0-3"]
    run = preimage.run(
        "visualize",
        lite0,
        targets=targets,
        size=64,
        steps=64,
        progress=False,
        compare_natural=True,
    )
    result, extra = run.render, run.extra
    ratios = torch.tensor(extra["ratio_to_natural_p99"])
    print(
        f"activation / natural p99 at 64 px after 64 steps: {[round(float(r), 2) for r in ratios]}"
    )
    assert extra["natural_images"] >= 200
    assert ratios.min() > 1.2 and ratios.median() > 2.0
    # one optimized image per target, each read from its own channel
    assert result.labels == [f"_blocks.{b}:{c}" for b in (1, 6, 13) for c in range(4)]
