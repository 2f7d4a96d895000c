"""The render loop: Finzi's closed-form sanity check, divergence, convergence, seeds."""

import pytest
import torch
import torch.nn.functional as F

import preimage
from preimage import ImageParam, Optimizer, parse_transforms
from preimage import objectives as O

CHANNELS = [0, 5, 7, 17]


def _param(n, size, basis="fourier", **kw):
    return ImageParam(n, size, basis=basis, generator=torch.Generator().manual_seed(0), **kw)


def _optimum_cosines(model, layer, filters, size):
    """Optimize the centre unit of each channel in CHANNELS (one batch); cosine with its filter."""
    # the optimum of w·x/σ - λ (1/HW) Σ x² is x = HW w / (2 λ σ): pick λ so its largest pixel is
    # about 1, which Adam at Finzi's learning rate reaches well within the steps
    std = min(model.std) / (model.input_range[1] - model.input_range[0])
    l2 = size * size * float(filters.abs().max()) / (2 * std)
    top, bottom, left, right = model.layer_info(layer, size).receptive_box()
    assert top >= 0 and left >= 0 and bottom <= size and right <= size
    obj = O.unit(layer, CHANNELS) - l2 * O.l2()
    param = _param(len(CHANNELS), size, "pixel", decorrelate=False, output="linear")
    result = preimage.render(
        model, obj, param, optimizer=Optimizer("adam", 0.05), steps=300, progress=False
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
        preimage.render(lite0, obj, _param(1, 32), steps=5, progress=False)


def test_convergence_stops_early(lite0):
    obj = O.channel("_blocks.0", 3) - 50.0 * O.l2()
    stop = preimage.Convergence(patience=10, rtol=1e-3)
    result = preimage.render(
        lite0,
        obj,
        _param(1, 24, "pixel", output="linear"),
        steps=1000,
        optimizer=Optimizer("adam", 0.02),
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
    kw = dict(transforms=parse_transforms("finzi"), steps=4, progress=False)
    a = preimage.render(lite0, obj, _param(2, 32), seed=3, **kw)
    b = preimage.render(lite0, obj, _param(2, 32), seed=3, **kw)
    c = preimage.render(lite0, obj, _param(2, 32), seed=4, **kw)
    assert torch.equal(a.images, b.images) and torch.equal(a.trace, b.trace)
    assert not torch.equal(a.images, c.images)


def test_result_holds_inputs_and_activations(lite0):
    obj = O.channel("_blocks.1", [2, 5]) - 0.01 * O.tv()
    r = preimage.render(lite0, obj, _param(2, 40), steps=3, progress=False)
    assert r.images.shape == (2, 3, 40, 40) and 0 <= r.images.min() and r.images.max() <= 1
    assert torch.allclose(r.inputs, lite0.preprocess(r.images), atol=1e-6)
    with torch.no_grad():
        act = lite0.activations(r.images, ["_blocks.1"])["_blocks.1"]
    assert torch.allclose(
        r.activations, torch.stack([act[0, 2].mean(), act[1, 5].mean()]), rtol=1e-4, atol=1e-4
    )
    assert torch.all(r.objective < r.activations)  # the TV penalty is subtracted


def test_render_takes_objects_not_strings(lite0):
    with pytest.raises(preimage.PreimageError, match="render takes objects"):
        preimage.render(lite0, O.channel("_blocks.0", 0), _param(1, 16), transforms="finzi")


class _Constant(torch.nn.Module):
    """A parameterization that is none of ours: one grey level per image, as a parameter."""

    def __init__(self, n, size):
        super().__init__()
        self.level = torch.nn.Parameter(torch.full((n, 1, 1, 1), 0.3))
        self.shape = (n, 3, size, size)  # nothing else of ours: no n, h or w attributes

    def forward(self):
        return self.level.expand(*self.shape)

    def set_images(self, images):
        with torch.no_grad():
            self.level.copy_(images.mean((1, 2, 3), keepdim=True))

    def describe(self):
        return {"type": "constant"}


def test_any_parameterization_works_and_regularizers_are_not_activation(lite0):
    # maximize -(x - 0.7)² per pixel: a grey image at 0.7 is the optimum; all of it is a target
    target = O.Objective(lambda ctx: -(ctx.images - 0.7).pow(2).mean((1, 2, 3)), [], "grey")
    reward = O.Objective(
        lambda ctx: ctx.images.mean((1, 2, 3)) * 0 + 0.25, [], "bonus", role="regularizer"
    )
    r = preimage.render(
        lite0,
        target + reward,
        _Constant(2, 8),
        optimizer=Optimizer("adam", 0.05),
        steps=200,
        progress=False,
    )
    assert torch.allclose(r.images, torch.full_like(r.images, 0.7), atol=1e-3)
    assert r.config["param"] == {"type": "constant"} and r.config["size"] == 8
    assert torch.allclose(r.objective, r.activations + 0.25)  # the regularizer is not activation


def test_views_stage_averages_each_images_views(lite0):
    from preimage import WindowedCrops

    views = WindowedCrops(5, k=4)
    x = torch.rand(2, 3, 12, 12)
    crops, groups = views(x, torch.Generator().manual_seed(0))
    assert crops.shape == (8, 3, 5, 5) and groups.size == 4
    assert torch.equal(groups.mean(torch.arange(8.0)), torch.tensor([1.5, 5.5]))
    assert torch.equal(groups.share(torch.tensor([4.0, 8.0])), torch.tensor([1.0] * 4 + [2.0] * 4))
    # a render over views: one value per image, the mean of its views' values
    per_view = O.unit("_blocks.0", [1] * 8)
    r = preimage.render(
        lite0, O.over_views(per_view), _param(2, 12), views=views, steps=2, progress=False
    )
    assert r.activations.shape == (2,) and r.inputs.shape[0] == 2 * 4  # the final 2x2 grid
    with torch.no_grad():
        a = lite0.activations_of_inputs(lite0.memory_format(r.inputs), ["_blocks.0"])["_blocks.0"]
    centre = a[:, 1, a.shape[-2] // 2, a.shape[-1] // 2].view(2, 4).mean(1)
    assert torch.allclose(r.activations, centre, rtol=1e-5, atol=1e-6)


def test_terms_measure_on_the_final_images(lite0):
    groups = preimage.Groups(2)
    term = O.min_distance(None, groups, [0.0, 1.0])
    r = preimage.render(
        lite0, O.channel("_blocks.0", 0) + term, _param(4, 8), steps=2, progress=False
    )
    scale, shift = lite0.centering(r.images)
    x = (r.images * scale + shift).flatten(1)
    by_hand = torch.stack([(x[0] - x[1]).norm(), (x[2] - x[3]).norm()])
    assert torch.allclose(r.measurements[term.name], by_hand, rtol=1e-5)


def test_an_objective_must_give_one_value_per_image(lite0):
    from preimage import WindowedCrops

    per_view = O.unit("_blocks.0", [1] * 8)  # 8 values for 2 images: not wrapped in over_views
    with pytest.raises(preimage.PreimageError, match=r"gives \(8,\) values for 2 images"):
        preimage.render(
            lite0, per_view, _param(2, 12), views=WindowedCrops(5, k=4), steps=2, progress=False
        )
    with pytest.raises(preimage.PreimageError, match="render takes a parameterization object"):
        preimage.render(lite0, O.channel("_blocks.0", 0), "fourier")


def test_wrapped_models_take_the_hints():
    from preimage.methods.mahendran import paper_C
    from preimage.models.aliases import inversion_C_by_depth, vgg_aliases

    net = torchvision_vgg11()
    aliases = vgg_aliases(net)
    model = preimage.wrap_model(
        net, aliases=aliases, C_by_depth=inversion_C_by_depth("vgg11", aliases)
    )
    assert paper_C(model, "conv4_2") == 300 and paper_C(model, "conv5_1") == 100
    assert paper_C(model, "relu5_2") == 20 and paper_C(model, "fc6") == 1
    with pytest.raises(preimage.PreimageError, match="unknown model hint 'threshold'"):
        preimage.wrap_model(net, threshold=0.5)


def torchvision_vgg11():
    import torchvision

    return torchvision.models.vgg11(weights=None)
