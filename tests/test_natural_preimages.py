"""Mahendran & Vedaldi: the energy's pieces, inversion, masked inversion, caricature,
maximization.
"""

import json

import pytest
import torch

import preimage
from preimage import objectives as O
from preimage.cli import main
from preimage.io.samples import sample_images
from preimage.methods import mahendran as NP
from preimage.methods.mahendran.caricature import caricature
from preimage.methods.mahendran.invert import invert
from preimage.methods.mahendran.maximize import maximize


@pytest.mark.parametrize(
    "term",
    [O.bounded_range(6.0, B=0.3), O.tv(2.0, V=0.05), O.tv(1.0), O.tv(1.5, V=0.1), O.l2()],
    ids=["N_alpha", "TV_beta2", "TV_beta1", "TV_beta1.5", "L2"],
)
def test_regularizer_gradients_match_finite_differences(term):
    torch.manual_seed(0)
    x = (torch.rand(2, 3, 6, 7, dtype=torch.float64) - 0.5).requires_grad_()

    def f(x):
        return term(O.Context({}, x, x))

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_inversion_loss_gradient_matches_finite_differences():
    torch.manual_seed(0)
    a = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    mask = torch.zeros(3, 4, 4, dtype=torch.float64)
    mask[:, 1:3, 1:3] = 1
    term = O.inversion("L", target, mask=mask, weight=torch.tensor([20.0, 300.0]))
    images = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a: term(O.Context({"L": a}, images, images)), (a,), eps=1e-6, atol=1e-6, rtol=1e-4
    )


def test_paper_constants_and_jitter():
    e = NP.Energy()
    assert (e.alpha, e.beta, e.B, e.B_plus, e.rho, e.steps) == (6.0, 2.0, 80.0, 160.0, 0.9, 300)
    assert e.V == pytest.approx(80 / 6.5) and e.eta0 == pytest.approx(0.01 * 80**2 / 6)
    # T = a quarter of the stride (Table 1 strides 4, 8, 16, 32)
    assert [NP.jitter_amount(s) for s in (1, 2, 4, 8, 16, 32)] == [0, 1, 1, 2, 4, 8]


def test_measured_constants_make_the_regularizers_one_on_the_images(lite0):
    images = sample_images(64, ["astronaut", "coffee", "camera"])
    e = NP.Energy.measured(lite0, images)
    unit = 1 / 255  # Lite0's input range is [0, 1]: paper units per model unit
    scale, shift = lite0.centering(images)
    ctx = O.Context({}, images, images * scale + shift)
    n_alpha = O.bounded_range(e.alpha, e.B * unit)(ctx)
    tv = O.tv(e.beta, e.V * unit)(ctx)
    # §3.2: B and V are "typical" values, such that the terms are about 1: pooled, exactly 1
    assert float(n_alpha.mean()) == pytest.approx(1.0, rel=1e-4)
    assert float(tv.mean()) == pytest.approx(1.0, rel=1e-4)
    assert e.B_plus == 2 * e.B and e.eta0 == pytest.approx(0.01 * e.B**2 / 6)
    paper = NP.Energy()
    assert (
        float(O.bounded_range(6, paper.B * unit)(ctx).mean()) > 10
    )  # the paper's B = 80 is the median norm, not the α-mean
    only_b = NP.Energy.measured(lite0, images, V=False)
    assert only_b.B == e.B and only_b.V == pytest.approx(e.B / 6.5)


def test_paper_choice_of_C_by_depth(alexnet):
    # §5.2.1: AlexNet 300 up to relu3, 100 up to relu4, 20 up to relu5, 1 after
    got = {
        a: NP.paper_C(alexnet, a)
        for a in (
            "conv1",
            "pool2",
            "relu3",
            "conv4",
            "relu4",
            "conv5",
            "relu5",
            "pool5",
            "fc6",
            "fc8",
        )
    }
    assert got == {
        "conv1": 300,
        "pool2": 300,
        "relu3": 300,
        "conv4": 100,
        "relu4": 100,
        "conv5": 20,
        "relu5": 20,
        "pool5": 1,
        "fc6": 1,
        "fc8": 1,
    }
    vgg = preimage.load_model("vgg16", weights="random")
    got = {
        a: NP.paper_C(vgg, a)
        for a in ("conv3_1", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "pool5", "fc7")
    }
    assert got == {
        "conv3_1": 300,
        "conv4_3": 300,
        "conv5_1": 100,
        "conv5_2": 20,
        "conv5_3": 20,
        "pool5": 1,
        "fc7": 1,
    }


def test_stem_inversion_recovers_the_image(lite0):
    images = sample_images(128, ["chelsea", "coffee"])
    result = invert(lite0, "_bn0", images, C=300, progress=False)
    print(
        "EfficientNet-Lite0 stem (_bn0) at 128 px, C = 300: errors"
        f" {[round(float(e), 3) for e in result.scores]}"
    )
    assert result.scores.mean() < 0.15
    # the reconstruction is close to the image in pixels as well, not only in the code
    assert (result.images - images).abs().mean() < 0.08
    assert result.images.shape == images.shape and result.render.steps == 300


def test_masked_inversion_sees_only_the_window_receptive_field(lite0):
    """Two targets equal inside the window's receptive field give the same reconstruction, and
    outside it the image stays near zero.
    """
    a = sample_images(64, ["chelsea"])
    info = lite0.layer_info("_blocks.1", 64)
    top, bottom, left, right = NP.window_box(info, 3)
    b = sample_images(64, ["coffee"])
    b[..., top:bottom, left:right] = a[..., top:bottom, left:right]
    ra = invert(
        lite0, "_blocks.1", a, C=300, mask_window=3, progress=False, energy=NP.Energy(steps=150)
    )
    rb = invert(
        lite0, "_blocks.1", b, C=300, mask_window=3, progress=False, energy=NP.Energy(steps=150)
    )
    assert torch.equal(ra.images, rb.images)
    scale, shift = lite0.centering(ra.images)
    norm = (ra.images * scale + shift)[0].norm(dim=0)  # RGB norm in centred input units
    outside = torch.ones_like(norm, dtype=torch.bool)
    outside[max(top - 4, 0) : bottom + 4, max(left - 4, 0) : right + 4] = False
    inside = norm[top:bottom, left:right].mean()
    B = 80 / 255
    print(
        f"masked inversion: mean RGB norm inside the field {inside / B:.2f} B, outside"
        f" {norm[outside].mean() / B:.2f} B"
    )
    assert norm[outside].mean() < 0.2 * B and norm[outside].mean() < 0.3 * inside


def test_seeds_give_different_reconstructions(lite0):
    image = sample_images(64, ["chelsea"])
    result = invert(
        lite0, "_blocks.6", image, C=20, seeds=2, progress=False, energy=NP.Energy(steps=60)
    )
    assert result.images.shape[0] == 2 and not torch.equal(result.images[0], result.images[1])


def test_caricature_exaggerates_from_the_image(lite0):
    image = sample_images(64, ["chelsea"])
    result = caricature(lite0, "_blocks.6", image, C=10, progress=False, energy=NP.Energy(steps=60))
    # the loss starts at -1 (⟨Φ(x0), max(0, Φ(x0))⟩ = ‖Φ0‖²): the first traced target term is
    # C * 1 minus penalties
    assert float(result.scores[0]) > 1.2
    assert (result.images - image).abs().mean() > 0.01


def test_maximize_beats_natural_images(lite0):
    natural = sample_images(64)
    result = maximize(
        lite0, "_blocks.4", [0, 1, 2], natural, progress=False, energy=NP.Energy(steps=100)
    )
    print(
        "Mahendran & Vedaldi activation maximization, _blocks.4: Φ/M ="
        f" {[round(float(s), 2) for s in result.scores]}"
    )
    assert (
        result.images.shape[-1] == lite0.layer_info("_blocks.4").rf_size
    )  # the window is the receptive field
    assert (result.scores > 1).all()


def test_invert_command_writes_errors(tmp_path, capsys):
    out = tmp_path / "inv"
    assert (
        main(
            [
                "invert",
                "--layer",
                "_blocks.0",
                "--image",
                "sample:coffee",
                "--size",
                "48",
                "--steps",
                "30",
                "--seeds",
                "2",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["reconstruction_error"]) == 2 and all(
        0 < e < 1 for e in metrics["reconstruction_error"]
    )
    assert (out / "grid.png").exists() and len(metrics["images"]) == 2


def test_bounded_photograph_error_is_zero_inside_the_bound_and_counts_what_it_clips(lite0):
    # B+ = 160 paper units around the mean colour: a grey image is inside it, black and white are
    # not
    g = torch.Generator().manual_seed(0)
    grey = (
        torch.tensor(lite0.display_mean()).view(1, 3, 1, 1)
        + 0.05 * torch.randn(2, 3, 32, 32, generator=g)
    ).clamp(0, 1)
    assert torch.equal(NP.bounded_photograph_error(lite0, "_blocks.0", grey), torch.zeros(2))
    stark = (torch.rand(1, 1, 32, 32, generator=g) > 0.5).float().expand(1, 3, 32, 32)
    clipped = NP.bounded_photograph_error(lite0, "_blocks.0", stark)
    assert 0.05 < float(clipped) < 1
    # with B and so B+ twice as large nothing is clipped
    assert float(NP.bounded_photograph_error(lite0, "_blocks.0", stark, NP.Energy(B=160.0))) == 0
    # a model that takes 0-255 inputs: the pixels inside the bound stay exactly as they are
    hog = preimage.load_model("hog")
    inside = (
        torch.tensor(hog.display_mean()).view(1, 3, 1, 1)
        + 0.05 * torch.randn(1, 3, 32, 32, generator=g)
    ).clamp(0, 1)
    assert float(NP.bounded_photograph_error(hog, hog.layers(32)[-1].name, inside)) == 0


def test_invert_table_command_on_random_vgg16(tmp_path, capsys):
    out = tmp_path / "table"
    code = main(
        [
            "invert-table",
            "--model",
            "vgg16",
            "--weights",
            "random",
            "--layers",
            "conv1_1,conv3_1,fc8",
            "--C",
            "1,300",
            "--size",
            "32",
            "--limit",
            "2",
            "--steps",
            "40",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    for name in (
        "table.csv",
        "table.md",
        "errors.png",
        "inversions.png",
        "result.npz",
        "metrics.json",
    ):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["mean_error"]) == {"conv1_1", "conv3_1", "fc8"}
    assert [c["layer"] for c in metrics["columns"]] == ["features.0", "features.10", "classifier.6"]
    # the paper's C by depth (§5.2.1): 300 up to conv4_3, 1 for the fully connected layers
    assert metrics["paper_C"] == {"conv1_1": 300.0, "conv3_1": 300.0, "fc8": 1.0}
    assert set(metrics["bounded_photograph_error"]) == {"conv1_1", "conv3_1", "fc8"}
    row = [
        line
        for line in (out / "table.md").read_text().splitlines()
        if line.startswith("| paper's C by depth")
    ]
    assert (
        len(row) == 1
        and f"{100 * metrics['mean_error']['fc8']['1.0']:.1f}" in row[0]
        and "(C=1)" in row[0]
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["invert", "--layer", "_blocks.0", "--image", "sample:unicorn"],
            "unknown sample image 'unicorn'",
        ),
        (
            ["invert", "--layer", "_blocks.0", "--image", "sample:coffee", "--mask-channels", "5"],
            "bad --mask-channels '5'",
        ),
        (
            [
                "invert",
                "--layer",
                "_blocks.0",
                "--image",
                "sample:coffee",
                "--mask-channels",
                "3:99",
            ],
            "bad --mask-channels 3:99",
        ),
        (
            ["invert", "--layer", "_blocks.0", "--image", "sample:coffee", "--mask-window", "0"],
            "bad --mask-window 0",
        ),
        (
            ["invert", "--layer", "_blocks.0", "--image", "/no/such.png"],
            "cannot read image '/no/such.png'",
        ),
        (["invert-table", "--layers", "_blocks.0", "--C", "1,x"], "bad --C '1,x'"),
        (["maximize", "--target", "_blocks.0"], "maximize takes channels of one layer"),
        (
            ["invert", "--layer", "_blocks.0", "--image", "sample:coffee", "--B", "-3"],
            "bad --B '-3'",
        ),
        (
            ["caricature", "--layer", "_blocks.0", "--image", "sample:coffee", "--V", "meassured"],
            "bad --V 'meassured'",
        ),
        (["invert-table", "--layers", "_blocks.0", "--B", "1e200"], "bad --B '1e200'"),
        (
            ["invert", "--layer", "_blocks.0", "--image", "{flat}", "--V", "measured"],
            "bad --V measured: 0",
        ),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, capsys, args, needle):
    from PIL import Image

    flat = tmp_path / "flat.png"
    Image.new("RGB", (40, 40), (120, 120, 120)).save(flat)
    args = [a.replace("{flat}", str(flat)) for a in args]
    code = main(args + ["--size", "32", "--steps", "2", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_maximize_scores_are_activation_over_M(lite0):
    natural = sample_images(32, ["chelsea", "coffee", "grass"])
    result = maximize(
        lite0, "_blocks.2", [3, 7], natural, size=32, progress=False, energy=NP.Energy(steps=20)
    )
    with torch.no_grad():
        acts = lite0.activations(result.images, ["_blocks.2"])["_blocks.2"]
    h, w = acts.shape[-2:]
    unit = torch.stack([acts[0, 3, h // 2, w // 2], acts[1, 7, h // 2, w // 2]])
    M = torch.tensor([m["M"] for m in result.meta])
    assert torch.allclose(result.scores, unit / M, rtol=1e-3, atol=1e-4)
    # a window larger than the receptive field (19 px) weighs the loss by the share it sees
    assert result.config["Z"] == pytest.approx((M * 32 * 32 / 19**2).tolist(), rel=1e-5)
