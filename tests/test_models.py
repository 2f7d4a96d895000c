"""Loading models and weights, addressing layers, the truncated forward pass."""

import urllib.error

import pytest
import torch
from torch import nn

import preimage
from preimage.io.samples import sample_images
from preimage.models.layers import capture


def test_lite0_is_imagenet_trained_with_the_right_preprocessing(lite0):
    images = sample_images(224, ["chelsea", "coffee"])
    with torch.no_grad():
        top = lite0.logits(images).argmax(1).tolist()
    names = [lite0.classes[i] for i in top]
    assert names[0] in ("tabby", "tiger cat", "Egyptian cat")
    assert names[1] == "espresso"


def test_random_weights_are_seeded():
    a = preimage.load_model("alexnet", weights="random", seed=3).module.features[0].weight
    b = preimage.load_model("alexnet", weights="random", seed=3).module.features[0].weight
    c = preimage.load_model("alexnet", weights="random", seed=4).module.features[0].weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_state_dict_file_round_trip(tmp_path, alexnet):
    path = tmp_path / "alexnet.pt"
    torch.save(
        {"state_dict": {"module." + k: v for k, v in alexnet.module.state_dict().items()}}, path
    )
    loaded = preimage.load_model("alexnet", weights=str(path), seed=99)
    for (k, v), w in zip(alexnet.module.state_dict().items(), loaded.module.state_dict().values()):
        assert torch.equal(v, w), k


def test_lite0_random_twin_differs(lite0):
    twin = preimage.load_model("efficientnet_lite0", weights="random", seed=0)
    assert not torch.equal(twin.module._conv_stem.weight, lite0.module._conv_stem.weight)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint", "is not a readable PyTorch state dict"),
        (None, "does not match model alexnet"),
    ],
)
def test_bad_weight_files(tmp_path, content, message):
    path = tmp_path / "w.pt"
    if content is None:
        torch.save(nn.Linear(3, 4).state_dict(), path)
    else:
        path.write_bytes(content)
    with pytest.raises(preimage.PreimageError, match=message):
        preimage.load_model("alexnet", weights=str(path))
    with pytest.raises(preimage.PreimageError, match="does not exist"):
        preimage.load_model("alexnet", weights=str(tmp_path / "missing.pt"))


def test_offline_imagenet_download_names_the_alternatives(monkeypatch):
    import torchvision.models._api as api

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(preimage.PreimageError, match="--weights random or --weights PATH"):
        preimage.load_model("alexnet", weights="imagenet")


def test_unknown_model_and_layer(alexnet):
    with pytest.raises(preimage.PreimageError, match="unknown model 'alexnt'.*alexnet"):
        preimage.load_model("alexnt")
    with pytest.raises(preimage.PreimageError, match="unknown layer 'conv9'"):
        alexnet.resolve_layer("conv9")


def test_paper_aliases():
    alex = preimage.load_model("alexnet", weights="random")
    assert alex.resolve_layer("conv3") == "features.6"
    assert alex.resolve_layer("fc8") == "classifier.6"
    vgg = preimage.load_model("vgg19", weights="random")
    assert vgg.resolve_layer("conv5_4") == "features.34"
    assert vgg.resolve_layer("relu3_1") == "features.11"
    assert vgg.resolve_layer("pool3") == "features.18"


def test_modules_called_twice_are_addressed_per_call(lite0):
    with pytest.raises(preimage.PreimageError, match="_swish#0, _swish#1"):
        lite0.resolve_layer("_swish")
    x = torch.rand(1, 3, 64, 64)
    acts = lite0.activations(x, ["_swish#0", "_bn0"])
    assert torch.allclose(acts["_swish#0"], acts["_bn0"].clamp(0, 6), atol=1e-5)


def test_wrap_any_module_with_its_preprocessing():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    model = preimage.wrap_model(
        net, mean=(100, 110, 120), std=(50, 50, 50), input_range=(0, 255), input_size=32
    )
    x = torch.rand(1, 3, 32, 32)
    expected = (x * 255 - torch.tensor([100.0, 110, 120]).view(1, 3, 1, 1)) / 50
    assert torch.allclose(model.preprocess(x), expected, atol=1e-4)
    assert [i.name for i in model.layers()] == ["0", "1", "2"]


def test_truncated_forward_stops_at_the_deepest_layer(lite0):
    ran = []
    module = lite0.runner(["_blocks.2"])
    late = module.get_submodule("_blocks.3").register_forward_pre_hook(lambda m, a: ran.append(1))
    try:
        with capture(module, ["_blocks.2", "_blocks.1"]) as c:
            acts = c.run(lite0.preprocess(torch.rand(2, 3, 64, 64)))
    finally:
        late.remove()
    assert ran == [] and set(acts) == {"_blocks.2", "_blocks.1"}


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_fused_copy_computes_the_same_activations(name, lite0):
    # Lite2 (width 1.1) has other channel counts than Lite0's
    model = lite0 if name == "efficientnet_lite0" else preimage.load_model(name)
    x = torch.rand(2, 3, 96, 96)
    layers = ["_blocks.2", "_blocks.5", "_blocks.9", "_fc"]
    with torch.no_grad():
        fused = model.activations(x, layers)
        with capture(model.module, layers) as c:
            plain = c.run(model.preprocess(x))
    assert model.runner(layers) is not model.module
    for k in layers:
        assert torch.allclose(fused[k], plain[k], rtol=1e-4, atol=1e-4), k
    # a folded convolution's own output is read from the original module
    assert model.runner(["_conv_stem"]) is model.module


def _hooks(module):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_no_hook_outlives_a_call(lite0):
    from preimage import objectives as O

    before = _hooks(lite0.module) + _hooks(lite0.runner(["_blocks.1"]))
    preimage.render(
        lite0, O.channel("_blocks.1", 0), preimage.ImageParam(1, 32), steps=2, progress=False
    )

    def bad(ctx):
        return ctx.activations["_blocks.1"].mean((1, 2, 3)) * float("nan")

    with pytest.raises(preimage.PreimageError):
        preimage.render(
            lite0,
            O.Objective(bad, ["_blocks.1"], "nan-term"),
            preimage.ImageParam(1, 32),
            steps=2,
            progress=False,
        )
    lite0.layers(48)
    assert _hooks(lite0.module) + _hooks(lite0.runner(["_blocks.1"])) == before == 0


def test_the_packaged_torchvision_names_are_torchvision_s_own():
    # `preimage models` reads the snapshot to answer without importing torchvision; a stale
    # snapshot would list models that do not load, or hide new ones
    import json
    from importlib import metadata, resources

    from preimage.models.registry import torchvision_names
    from preimage.models.zoo.torchvision import torchvision_names as listed

    snapshot = json.loads(
        (resources.files("preimage") / "data" / "torchvision_models.json").read_text()
    )
    assert snapshot["torchvision"] == metadata.version("torchvision")  # refresh it with the pin
    assert snapshot["models"] == listed() == torchvision_names()
