"""The PixelCNN++ prior: causality, the discretized logistic likelihood by hand, training, resuming,
the prior term.
"""

import math

import numpy as np
import pytest
import torch

from preimage import objectives as O
from preimage.priors.pixelcnn import PixelCNNPP, PixelCNNPrior, mixture_log_prob
from preimage.priors.training import gaussian_bpd, load_prior, natural_arrays, patches, train


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def _constant_output_network(mu, log_s):
    """Every weight zero: the output is its bias, one logistic per channel
    (K = 1, coefficients 0).
    """
    net = PixelCNNPP(filters=4, resnets=1, scales=2, mixtures=1)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        # layout for K = 1 (Salimans et al.'s): the logit, then per channel its mean, log scale and
        # coefficient
        net.out.bias.copy_(
            torch.tensor([0.0] + [v for m, s in zip(mu, log_s) for v in (m, s, 0.0)])
        )
    return PixelCNNPrior(net)


@pytest.mark.parametrize("value", [100, 0, 255])
def test_constant_image_likelihood_by_hand(value):
    mu, log_s = (
        (0.1, -0.2, -0.1),
        (
            -2.0,
            -1.5,
            -3.0,
        ),
    )  # every bin mass well above the 1e-5 switch to the density
    prior = _constant_output_network(mu, log_s)
    image = torch.full((1, 3, 5, 6), value / 255.0)
    x = 2 * value / 255 - 1
    total = 0.0
    for m, ls in zip(mu, log_s):
        s = math.exp(ls)
        if value == 0:
            p = _sigmoid((x + 1 / 255 - m) / s)
        elif value == 255:
            p = 1 - _sigmoid((x - 1 / 255 - m) / s)
        else:
            p = _sigmoid((x + 1 / 255 - m) / s) - _sigmoid((x - 1 / 255 - m) / s)
        total += math.log(p)
    expected = 30 * total  # 5 x 6 pixels
    with torch.no_grad():
        assert float(prior(image)) == pytest.approx(expected, rel=1e-5)
        assert float(prior.bits_per_dim(image)) == pytest.approx(
            -expected / (90 * math.log(2)), rel=1e-5
        )


@pytest.mark.parametrize("bins", [8, 16])
def test_the_distribution_of_a_pixel_sums_to_one(bins):
    # the same code as for 256 levels, on a grid small enough to sum over every colour
    torch.manual_seed(0)
    k = 3
    params = torch.randn(1, 10 * k, 1, 1, dtype=torch.float64)
    values = torch.arange(bins, dtype=torch.float64) / (bins - 1) * 2 - 1
    r, g, b = torch.meshgrid(values, values, values, indexing="ij")
    x = torch.stack([r, g, b]).reshape(3, -1).T.reshape(-1, 3, 1, 1)
    total = float(mixture_log_prob(x, params.expand(x.shape[0], -1, -1, -1), bins=bins).exp().sum())
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("size", [(8, 8), (7, 10)])
def test_each_pixel_depends_only_on_the_pixels_before_it(size):
    torch.manual_seed(0)
    h, w = size
    net = PixelCNNPP(filters=8, resnets=1, scales=3, mixtures=2)
    x = (torch.rand(1, 3, h, w) * 2 - 1).requires_grad_(True)
    out = net(x)
    order = torch.arange(h * w).view(h, w)
    for i, j in [(0, 0), (1, 0), (2, 3), (h - 1, w - 1)]:
        (grad,) = torch.autograd.grad(out[0, :, i, j].sum(), x, retain_graph=True)
        seen = grad.abs().sum((0, 1)) > 0
        assert not (seen & (order >= i * w + j)).any()
        # and it does see the pixel just before it, and the one above
        if j > 0:
            assert seen[i, j - 1]
        if i > 0:
            assert seen[i - 1, j]


def test_gradients_are_finite_inside_and_outside_the_range():
    torch.manual_seed(0)
    prior = PixelCNNPrior(PixelCNNPP(filters=8, resnets=1, scales=2, mixtures=3))
    x = (torch.rand(2, 3, 9, 9) * 1.4 - 0.2).requires_grad_(True)  # some values outside [0, 1]
    (g,) = torch.autograd.grad(prior(x).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_training_learns_resumes_exactly_and_loads(tmp_path):
    kw = dict(
        images="samples",
        patch=8,
        batch=8,
        network={"filters": 8, "resnets": 1, "scales": 2, "mixtures": 2},
        held_out=64,
        eval_every=10,
        save_every=10,
        progress=False,
        log=lambda *a: None,
    )
    whole, history = train(str(tmp_path / "whole.pt"), steps=40, **kw)
    assert [h["step"] for h in history] == [10, 20, 30, 40]
    assert history[-1]["held_out_bpd"] < history[0]["held_out_bpd"] < 8.5
    part = str(tmp_path / "part.pt")
    train(part, steps=20, **kw)
    resumed, history2 = train(part, steps=40, **kw)
    assert [h["step"] for h in history2] == [10, 20, 30, 40]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    loaded = load_prior(part)
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(loaded(x), resumed.eval()(x), atol=1e-4)


def test_natural_patches_score_higher_than_noise_even_for_a_small_prior(tmp_path):
    kw = dict(
        images="samples",
        patch=8,
        batch=16,
        network={"filters": 8, "resnets": 1, "scales": 2, "mixtures": 2},
        held_out=64,
        eval_every=30,
        save_every=30,
        progress=False,
        log=lambda *a: None,
    )
    prior, _ = train(str(tmp_path / "p.pt"), steps=30, **kw)
    prior.eval()
    arrays = natural_arrays("samples")
    natural = torch.from_numpy(patches(arrays, 12, 32, "test")).float() / 255
    noise = torch.rand(32, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert prior.bits_per_dim(natural).mean() + 1.0 < prior.bits_per_dim(noise).mean()


def test_gaussian_baseline_matches_its_own_entropy():
    # patches drawn from a known Gaussian (then quantized): the fitted model's bpd is near the true
    # entropy
    rng = np.random.default_rng(0)
    d = 12
    a = rng.normal(size=(d, d))
    cov = a @ a.T + 20 * np.eye(d)

    def sample(n):
        return (
            np.clip(np.round(rng.multivariate_normal(np.full(d, 128.0), cov, size=n)), 0, 255)
            .astype(np.uint8)
            .reshape(n, 3, 2, 2)
        )

    bpd = gaussian_bpd(sample(20000), sample(4000))
    # differential entropy of N(μ, Σ + I/12) (quantization noise) in bits per dimension
    entropy = (
        0.5 * np.linalg.slogdet(2 * np.pi * np.e * (cov + np.eye(d) / 12))[1] / (d * np.log(2))
    )
    assert bpd == pytest.approx(entropy, abs=0.02)


def test_log_prior_term_raises_the_likelihood():
    torch.manual_seed(0)
    prior = _constant_output_network((0.0, 0.0, 0.0), (-1.0, -1.0, -1.0))  # prefers mid-grey
    term = O.log_prior(prior)
    # inside (0, 1): at the two extreme values the discretized likelihood jumps to a tail mass
    images = (0.1 + 0.8 * torch.rand(3, 3, 8, 8)).requires_grad_(True)
    ctx = O.Context(activations={}, images=images, centered=images)
    value = term(ctx)
    assert value.shape == (3,) and term.role == "regularizer"  # a reward, added with weight > 0
    (g,) = torch.autograd.grad(value.sum(), images)
    stepped = (images + 1e-3 * g.sign()).detach()
    assert (
        term(O.Context(activations={}, images=stepped, centered=stepped)) > value.detach()
    ).all()


def test_prior_flags_reach_every_method(tmp_path, capsys):
    from preimage.cli import main

    ckpt = str(tmp_path / "tiny.pt")
    train(
        ckpt,
        images="samples",
        patch=8,
        steps=2,
        batch=4,
        network={"filters": 4, "resnets": 1, "scales": 1, "mixtures": 1},
        held_out=8,
        eval_every=2,
        save_every=2,
        progress=False,
        log=lambda *a: None,
    )
    common = ["--size", "32", "--steps", "3", "--quiet", "--prior", ckpt]
    assert (
        main(
            [
                "invert",
                "--layer",
                "_blocks.1",
                "--image",
                "sample:chelsea",
                "--out",
                str(tmp_path / "inv"),
            ]
            + common
        )
        == 0
    )
    assert (
        main(
            [
                "diverse",
                "--target",
                "_blocks.1:0",
                "--lambdas",
                "0,1",
                "--n",
                "2",
                "--prior-weight",
                "0.01",
                "--out",
                str(tmp_path / "div"),
            ]
            + common
        )
        == 0
    )
    assert (
        main(["visualize", "--target", "_blocks.1:0", "--out", str(tmp_path / "vis")] + common) == 0
    )
    import json

    inv = json.loads((tmp_path / "inv" / "metrics.json").read_text())
    assert (
        inv["config"]["prior"]["weight"] == 0.1
        and inv["config"]["prior"]["network"]["filters"] == 4
    )
    div = json.loads((tmp_path / "div" / "metrics.json").read_text())
    assert div["config"]["prior"]["weight"] == 0.01 and div["config"]["prior"]["patch"] == 8
    vis = json.loads((tmp_path / "vis" / "metrics.json").read_text())
    assert vis["prior"]["weight"] == 0.0005 and len(vis["prior"]["log_prior"]) == 1
    capsys.readouterr()
    assert (
        main(
            [
                "invert",
                "--layer",
                "_blocks.1",
                "--image",
                "sample:chelsea",
                "--prior-weight",
                "1",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "--prior-weight" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_packaged_prior_ranks_natural_above_visualizations_above_noise():
    import preimage

    prior = load_prior("default")
    assert prior.describe()["steps"] > 0
    natural = torch.from_numpy(patches(natural_arrays("samples"), 32, 32, "test")).float() / 255
    model = preimage.load_model("efficientnet_lite0")
    made = preimage.run(
        "visualize", model, targets=["_blocks.3:0-3"], size=32, steps=40, progress=False
    ).render  # no prior
    noise = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        bpd_natural = prior.bits_per_dim(natural)
        bpd_made = prior.bits_per_dim(made.images)
        bpd_noise = prior.bits_per_dim(noise)
    assert bpd_natural.median() + 1.0 < bpd_made.min()
    assert bpd_made.max() + 1.0 < bpd_noise.min()
