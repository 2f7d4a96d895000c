"""The render loop: Finzi's closed-form sanity check, divergence, convergence, seeds."""

import pytest
import torch
import torch.nn.functional as F

import preimage
from preimage import objectives as O

CHANNELS = [0, 5, 7, 17]


def _optimum_cosines(model, layer, filters, size):
    """Optimize the centre unit of each channel in CHANNELS (one batch); cosine with its filter."""
    # the optimum of w·x/σ - λ (1/HW) Σ x² is x = HW w / (2 λ σ): pick λ so its largest pixel is
    # about 1, which Adam at Finzi's learning rate reaches well within the steps
    std = min(model.std) / (model.input_range[1] - model.input_range[0])
    l2 = size * size * float(filters.abs().max()) / (2 * std)
    top, bottom, left, right = model.layer_info(layer, size).receptive_box()
    assert top >= 0 and left >= 0 and bottom <= size and right <= size
    obj = O.unit(layer, CHANNELS) - l2 * O.l2()
    result = preimage.render(
        model,
        obj,
        n=len(CHANNELS),
        size=size,
        param="pixel",
        decorrelate=False,
        output="linear",
        transforms="none",
        optimizer="adam",
        lr=0.05,
        steps=300,
        progress=False,
    )
    scale, shift = model.centering(result.images)
    centred = (result.images * scale + shift)[:, :, top:bottom, left:right]
    return F.cosine_similarity(centred.flatten(1), filters.flatten(1), dim=1)


def test_finzi_sanity_check_alexnet_conv1(alexnet):
    """A linear first-layer unit under an L2 penalty: the optimum is its filter."""
    filters = alexnet.module.features[0].weight[CHANNELS]
    cos = _optimum_cosines(alexnet, "conv1", filters, size=15)
    print(
        f"AlexNet conv1 (random weights), channels {CHANNELS}: cosine with the filter"
        f" {[round(float(c), 5) for c in cos]}"
    )
    assert cos.min() >= 0.99


def test_finzi_sanity_check_lite0_stem(lite0):
    """EfficientNet-Lite0's stem conv plus batch norm (real weights):
    the effective filter is w·γ/σ.
    """
    conv, bn = lite0.module._conv_stem, lite0.module._bn0
    gain = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    filters = (conv.weight * gain.view(-1, 1, 1, 1))[CHANNELS]
    cos = _optimum_cosines(lite0, "_bn0", filters, size=15)
    print(
        f"EfficientNet-Lite0 stem conv + BN, channels {CHANNELS}: cosine with the filter"
        f" {[round(float(c), 5) for c in cos]}"
    )
    assert cos.min() >= 0.99


def test_divergence_names_the_step_and_the_term(lite0):
    def blow_up(ctx):
        a = ctx.activations["_blocks.0"].mean((1, 2, 3))
        return torch.where(ctx.images.sum() > -1, torch.log(a - 1e9), a)

    obj = O.channel("_blocks.0", 0) + O.Objective(blow_up, ["_blocks.0"], "log-term")
    with pytest.raises(preimage.PreimageError, match=r"step 0: non-finite value in term log-term"):
        preimage.render(lite0, obj, size=32, steps=5, progress=False)


def test_convergence_stops_early(lite0):
    obj = O.channel("_blocks.0", 3) - 50.0 * O.l2()
    stop = preimage.Convergence(patience=10, rtol=1e-3)
    result = preimage.render(
        lite0,
        obj,
        size=24,
        param="pixel",
        transforms="none",
        output="linear",
        steps=1000,
        lr=0.02,
        stop=stop,
        progress=False,
    )
    assert result.steps < 1000
    assert result.trace.shape == (result.steps, 1)
    # converged: the last steps barely move
    tail = result.trace[-10:, 0]
    assert float(tail.max() - tail.min()) <= 0.05 * abs(float(tail.mean())) + 1e-3


def test_same_seed_same_bits(lite0):
    obj = O.channel("_blocks.1", [0, 1])
    kw = dict(n=2, size=32, transforms="finzi", steps=4, progress=False)
    a = preimage.render(lite0, obj, seed=3, **kw)
    b = preimage.render(lite0, obj, seed=3, **kw)
    c = preimage.render(lite0, obj, seed=4, **kw)
    assert torch.equal(a.images, b.images) and torch.equal(a.trace, b.trace)
    assert not torch.equal(a.images, c.images)


def test_result_holds_inputs_and_activations(lite0):
    obj = O.channel("_blocks.1", [2, 5]) - 0.01 * O.tv()
    r = preimage.render(lite0, obj, n=2, size=40, steps=3, progress=False)
    assert r.images.shape == (2, 3, 40, 40) and 0 <= r.images.min() and r.images.max() <= 1
    assert torch.allclose(r.inputs, lite0.preprocess(r.images), atol=1e-6)
    with torch.no_grad():
        act = lite0.activations(r.images, ["_blocks.1"])["_blocks.1"]
    assert torch.allclose(
        r.activations, torch.stack([act[0, 2].mean(), act[1, 5].mean()]), rtol=1e-4, atol=1e-4
    )
    assert torch.all(r.objective < r.activations)  # the TV penalty is subtracted
