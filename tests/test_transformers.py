"""Every layer layout a researcher brings: vision transformers' tokens, Swin's channels-last maps,
ConvNeXt, and the timm zoo.

The objectives are checked against hand computations on the tensors the modules return (caught
by a forward hook of our own, in the module's own layout), Finzi's closed-form optimum is checked
on a ViT's linear patch embedding, and a list of timm families runs the methods end to end.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import preimage
from preimage import Optimizer
from preimage import objectives as O
from preimage.engine.targets import element_values, parse_target

timm = pytest.importorskip("timm")  # make test installs it; the library does not need it


def _tv_vit():
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=10,
    )  # fmt: skip
    return preimage.wrap_model(vit, input_size=32, fixed_input_size=True, name="tv_vit")


def _tv_swin():
    swin = torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=[4, 4],
        num_classes=10,
    )  # fmt: skip
    return preimage.wrap_model(swin, input_size=32, name="tv_swin")


def _tv_convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    net = ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=10)
    return preimage.wrap_model(net, input_size=32, name="tv_convnext")


def _timm(name, **kw):
    return preimage.load_model(f"timm/{name}", weights="random") if not kw else None


# (model, layer, the layout we expect, its prefix tokens)
CASES = {
    "torchvision ViT": (_tv_vit, "encoder.layers.encoder_layer_0", "tokens", 1),
    "torchvision ViT, before attention": (_tv_vit, "encoder.dropout", "tokens", 1),
    "torchvision Swin": (_tv_swin, "features.1", "nhwc", 0),
    "torchvision ConvNeXt": (_tv_convnext, "features.1", "nchw", 0),
    "timm DeiT": (lambda: _timm("deit_tiny_patch16_224"), "blocks.1", "tokens", 1),
    "timm Swin": (lambda: _timm("swin_tiny_patch4_window7_224"), "layers.0", "nhwc", 0),
    "timm ConvNeXt": (lambda: _timm("convnext_atto"), "stages.1", "nchw", 0),
}


def _raw_output(model, layer, images):
    """The layer's output as its module returns it, by a hook of our own."""
    got = {}
    module = dict(model.module.named_modules())[model.resolve_layer(layer)]
    handle = module.register_forward_hook(lambda m, i, o: got.setdefault("out", o))
    try:
        with torch.no_grad():
            model.module(model.preprocess(images))
    finally:
        handle.remove()
    return got["out"]


def _by_hand(raw, kind, prefix, channel, y, x, vector):
    """channel, unit, class-token and direction values computed from the module's own layout."""
    if kind == "tokens":
        patches = raw[:, prefix:, :]  # N x H·W x D, row by row
        w = int(round(patches.shape[1] ** 0.5))
        return {
            "channel": patches[:, :, channel].mean(1),
            "unit": patches[:, y * w + x, channel],
            "cls": raw[:, 0, channel] if prefix else None,
            "direction": (patches @ vector).mean(1),
        }
    maps = raw if kind == "nchw" else raw.permute(0, 3, 1, 2)
    return {
        "channel": maps[:, channel].mean((1, 2)),
        "unit": maps[:, channel, y, x],
        "cls": None,
        "direction": torch.einsum("nchw,c->nhw", maps, vector).mean((1, 2)),
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_objectives_equal_hand_computations(case, tmp_path):
    build, layer, kind, prefix = CASES[case]
    model = build()
    info = model.layer_info(layer)
    assert info.layout.kind == kind and info.layout.prefix == prefix, info
    size = model.input_size
    images = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    raw = _raw_output(model, layer, images)
    channels, h, w = info.shape
    channel, y, x = channels // 3, h // 3, w - 1  # off-centre and asymmetric on purpose
    vector = torch.randn(channels, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "v.npy"
    import numpy as np

    np.save(path, vector.numpy())
    expected = _by_hand(raw, kind, prefix, channel, y, x, vector)
    specs = {
        "channel": f"{layer}:{channel}",
        "unit": f"{layer}:{channel}@{y},{x}",
        "direction": f"{layer}:dir={path}",
    }
    if prefix:
        specs["cls"] = f"{layer}:{channel}@cls"
    for what, spec in specs.items():
        got = element_values(model, parse_target(model, spec, size), images)[:, 0]
        assert torch.allclose(got, expected[what].float(), rtol=1e-4, atol=1e-5), (case, what)


def test_a_layer_without_a_class_token_says_so():
    model = _tv_swin()
    with pytest.raises(preimage.PreimageError, match="has no class token"):
        parse_target(model, "features.1:0@cls")


def test_finzi_closed_form_on_a_vit_patch_embedding():
    """The patch embedding is linear: the optimum of one patch token's feature under an L2
    penalty is that feature's patch filter, read through the token layout (class token first)."""
    model = _tv_vit()
    layer, channels, size = "encoder.dropout", [0, 5, 9, 13], 32
    info = model.layer_info(layer)
    _, gh, gw = info.shape
    y, x = gh // 2, gw // 2
    filters = model.module.conv_proj.weight[channels]  # D x 3 x 8 x 8
    std = min(model.std)
    l2 = size * size * float(filters.abs().max()) / (2 * std)
    obj = O.unit(layer, channels, y, x) - l2 * O.l2()
    param = preimage.ImageParam(
        len(channels), size, basis="pixel", decorrelate=False, output="linear",
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    result = preimage.render(
        model, obj, param, optimizer=Optimizer("adam", 0.05), steps=300, progress=False
    )
    top, bottom, left, right = info.receptive_box(y, x)
    assert (bottom - top, right - left) == (8, 8)  # the patch
    scale, shift = model.centering(result.images)
    centred = (result.images * scale + shift)[:, :, top:bottom, left:right]
    cos = F.cosine_similarity(centred.flatten(1), filters.flatten(1), dim=1)
    print(f"ViT patch embedding, features {channels}: cosine {[round(float(c), 5) for c in cos]}")
    assert cos.min() >= 0.99


def test_receptive_fields_of_tokens():
    model = _tv_vit()
    table = {info.name: info for info in model.layers()}
    assert table["conv_proj"].rf_size == 8 and table["conv_proj"].rf_stride == 8
    assert table["encoder.dropout"].rf_size == 8 and not table["encoder.dropout"].mixed
    after = table["encoder.layers.encoder_layer_0"]
    assert after.mixed and after.receptive_box(0, 0) == (0, 32, 0, 32)  # the whole image


class _Unknown(nn.Module):
    """Tokens the trace cannot place: ten learned tokens before a grid it cannot see."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 4, stride=4)
        self.extra = nn.Parameter(torch.randn(1, 10, 6))
        self.mix = nn.Identity()

    def forward(self, x):
        t = self.conv(x)
        t = torch.einsum("nchw->nhwc", t).reshape(x.shape[0], -1, 6)
        return self.mix(torch.cat([self.extra.expand(x.shape[0], -1, -1), t], 1))


def test_a_layer_it_cannot_classify_names_the_override():
    model = preimage.wrap_model(_Unknown(), input_size=32)
    with pytest.raises(preimage.PreimageError, match=r"layout of layer mix .*--layout mix=FORM"):
        parse_target(model, "mix:2")
    model.with_layouts({"mix": "tokens:10"})
    info = model.layer_info("mix")
    assert info.shape == (6, 8, 8) and str(info.layout) == "tokens 10+8x8"
    raw = _raw_output(model, "mix", torch.ones(1, 3, 32, 32))
    got = element_values(model, parse_target(model, "mix:2@1,3"), torch.ones(1, 3, 32, 32))
    assert torch.allclose(got[0, 0], raw[0, 10 + 1 * 8 + 3, 2])
    with pytest.raises(preimage.PreimageError, match="does not fit layer"):
        preimage.wrap_model(_Unknown(), input_size=32, layouts={"mix": "nhwc"}).layers()


def test_cli_layers_shows_the_layout_and_refuses_a_bad_override():
    exe = os.path.join(os.path.dirname(sys.executable), "preimage")
    cmd = [exe, "layers", "--model", "vit_b_16", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    table = {row["name"]: row for row in json.loads(out.stdout)}
    row = table["encoder.layers.encoder_layer_2"]
    assert row["layout"] == "tokens 1+14x14" and row["shape"] == [768, 14, 14]
    bad = cmd[:-1] + ["--layout", "encoder.ln=nhwc"]
    out = subprocess.run(bad, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "does not fit layer encoder.ln" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


# the smallest member of each family, random weights, at its own input size
FAMILIES = [
    "vit_tiny_patch16_224",
    "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
    "convnext_atto",
    "resnet10t",
    "efficientnet_b0",
    "regnetx_002",
    "mobilenetv3_small_050",
]


def _middle_layer(model):
    table = [i for i in model.layers() if i.layout is not None and len(i.shape) == 3]
    blocks = [i for i in table if i.name.count(".") == 1] or table
    return blocks[len(blocks) // 2].name


@pytest.mark.parametrize("name", FAMILIES)
def test_timm_family_runs_every_method(name, tmp_path):
    model = preimage.load_model(f"timm/{name}", weights="random")
    size = model.input_size
    layer = _middle_layer(model)
    vis = preimage.run("visualize", model, targets=[f"{layer}:0"], steps=2, progress=False)
    assert vis.render.images.shape == (1, 3, size, size)
    div = preimage.run(
        "diverse", model, target=f"{layer}:1", n=2, lambdas=[0, 1], steps=2, progress=False
    )
    sweep = div.sweeps[0]
    assert sweep.images.shape[:2] == (2, 2)
    if model.fixed_input_size:  # position embeddings: the unit's image is the input size
        assert sweep.images.shape[-1] == size
    inv = preimage.run(
        "invert", model, layer=layer, image="sample:astronaut", steps=2, progress=False
    )
    assert torch.isfinite(torch.as_tensor(inv.scores)).all()
    inv.save(tmp_path / "inv")
    assert (tmp_path / "inv" / "metrics.json").exists()


def test_timm_weights_from_a_file_and_from_the_download(tmp_path, monkeypatch):
    name = "timm/resnet10t"
    source = preimage.load_model(name, weights="random", seed=3)
    path = tmp_path / "resnet10t.pt"
    torch.save(source.module.state_dict(), path)
    loaded = preimage.load_model(name, weights=str(path))
    assert loaded.weights == str(path)
    for a, b in zip(source.module.state_dict().values(), loaded.module.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.interpolation == "bicubic" and loaded.input_size == 176  # its pretrained cfg

    create = timm.create_model

    def download(arch, pretrained=False, **kw):
        if pretrained:  # what timm does online: the architecture, then the hub's weights
            model = create(arch, pretrained=False, **kw)
            model.load_state_dict(torch.load(path, weights_only=True))
            return model
        return create(arch, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", download)
    online = preimage.load_model(name)
    assert online.weights.startswith("pretrained")
    assert torch.equal(next(iter(online.module.state_dict().values())), next(iter(
        source.module.state_dict().values())))  # fmt: skip

    def offline(arch, pretrained=False, **kw):
        if pretrained:
            raise OSError("no network")
        return create(arch, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(preimage.PreimageError, match="--weights random or --weights PATH"):
        preimage.load_model(name)
    tagged = preimage.load_model("timm/resnet10t.c3_in1k", weights="random")  # NAME.TAG
    assert tagged.module.pretrained_cfg.get("tag") == "c3_in1k"
    with pytest.raises(preimage.PreimageError, match="unknown timm model 'resnet10x'"):
        preimage.load_model("timm/resnet10x", weights="random")


@pytest.mark.parametrize(
    "build", [_tv_vit, _tv_swin, _tv_convnext], ids=["vit", "swin", "convnext"]
)
def test_the_fast_copy_reads_what_the_model_computes(build):
    """The speed path (the CPU fast copy, truncation) gives every layer the values of the model
    as loaded, in a token or channels-last model too."""
    model = build()
    x = torch.rand(
        2, 3, model.input_size, model.input_size, generator=torch.Generator().manual_seed(0)
    )
    layers = [i.name for i in model.layers() if i.layout is not None]
    fast = model.activations(x, layers)
    model.fuse = False
    plain = model.activations(x, layers)
    for layer in layers:
        assert torch.allclose(fast[layer], plain[layer], rtol=1e-4, atol=1e-5), layer


def test_photographs_are_resized_as_the_model_was_trained(tmp_path):
    """A timm model's interpolation (its pretrained configuration) resizes the photograph an
    inversion starts from; the default stays bicubic."""
    import numpy as np
    from PIL import Image

    from preimage.io.samples import sample_arrays

    [(_, array)] = sample_arrays(["astronaut"])
    s = min(array.shape[:2])
    square = Image.fromarray(np.ascontiguousarray(array[:s, :s]))
    model = _tv_convnext()
    for interpolation, pil in (("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)):
        model.interpolation = interpolation
        result = preimage.run(
            "invert", model, layer="features.1", image="sample:astronaut", steps=1, progress=False
        )
        source = np.asarray(square.resize((32, 32), pil)).astype(np.float32) / 255
        got = result.originals[0].permute(1, 2, 0).numpy()
        assert np.allclose(got, source, atol=1e-6), interpolation


def test_overrides_hold_at_other_sizes_and_a_bad_one_changes_nothing():
    model = preimage.wrap_model(_Unknown(), input_size=32, layouts={"mix": "tokens:10:8x8"})
    assert model.layer_info("mix").shape == (6, 8, 8)
    assert model.layer_info("mix", 48).shape == (6, 12, 12)  # the grid of that size
    with pytest.raises(preimage.PreimageError, match="unknown layer 'nosuch'"):
        model.with_layouts({"nosuch": "nchw"})
    assert "nosuch" not in model.layouts and model.layer_info("mix").shape == (6, 8, 8)


def test_batch_folded_layers_have_no_layout_and_cls_is_refused_where_it_cannot_apply():
    """Window attention folds windows into the batch: no per-image layout reads it. diverse
    optimizes a centre unit, so it refuses @cls rather than reading a patch token instead."""
    swin = _timm("swin_tiny_patch4_window7_224")
    assert swin.layer_info("layers.0.blocks.0.attn.softmax").layout is None
    with pytest.raises(preimage.PreimageError, match="cannot tell the layout"):
        parse_target(swin, "layers.0.blocks.0.attn.softmax:1")
    vit = _tv_vit()
    with pytest.raises(preimage.PreimageError, match="takes channels of one layer"):
        preimage.run("diverse", vit, target="encoder.layers.encoder_layer_0:3@cls", steps=1)


def test_logits_of_a_fixed_size_model_resize_the_images():
    # a ViT runs at its input size only: logits of a 20 px image are those of it resized to 32 px
    import torch.nn.functional as F

    model = _tv_vit()
    model.module.eval()
    small = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    resized = F.interpolate(small, size=(32, 32), mode="bilinear", antialias=True)
    with torch.no_grad():
        assert torch.allclose(model.logits(small), model.logits(resized), atol=1e-6)
        assert model.logits(small).shape == (2, 10)
