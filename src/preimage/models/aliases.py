"""The papers' layer names for torchvision's AlexNet and VGG.

Mahendran & Vedaldi (Tables 1 and 3) and Finzi name layers conv1 ... fc8 for
AlexNet and conv1_1 ... conv5_4, relu3_1, pool3, fc6 ... for VGG. torchvision
keeps the same layer sequence (without AlexNet's LRN layers), so the names
follow from walking ``features`` and ``classifier``.
"""

from torch import nn


def _classifier_aliases(classifier, prefix="classifier"):
    names = {}
    fc = 5
    for i, m in enumerate(classifier):
        if isinstance(m, nn.Linear):
            fc += 1
            names[f"fc{fc}"] = f"{prefix}.{i}"
        elif isinstance(m, nn.ReLU):
            names[f"relu{fc}"] = f"{prefix}.{i}"
    return names


def alexnet_aliases(model):
    """{paper name: module path} for torchvision's AlexNet: conv1-5, relu1-7, pool1, pool2,
    pool5 and fc6-8.
    """
    names = {}
    n = 0
    for i, m in enumerate(model.features):
        if isinstance(m, nn.Conv2d):
            n += 1
            names[f"conv{n}"] = f"features.{i}"
        elif isinstance(m, nn.ReLU):
            names[f"relu{n}"] = f"features.{i}"
        elif isinstance(m, nn.MaxPool2d):
            names[f"pool{n}"] = f"features.{i}"
    names.update(_classifier_aliases(model.classifier))
    return names


def vgg_aliases(model):
    """{paper name: module path} for torchvision's VGG: convB_K, bnB_K (batch-norm models),
    reluB_K, poolB, fc6-8 and relu6-7.
    """
    names = {}
    block, k = 1, 0
    for i, m in enumerate(model.features):
        if isinstance(m, nn.Conv2d):
            k += 1
            names[f"conv{block}_{k}"] = f"features.{i}"
        elif isinstance(m, nn.BatchNorm2d):
            names[f"bn{block}_{k}"] = f"features.{i}"
        elif isinstance(m, nn.ReLU):
            names[f"relu{block}_{k}"] = f"features.{i}"
        elif isinstance(m, nn.MaxPool2d):
            names[f"pool{block}"] = f"features.{i}"
            block, k = block + 1, 0
    names.update(_classifier_aliases(model.classifier))
    return names


def aliases_for(arch, model):
    """The paper names of a torchvision architecture's layers; {} except for AlexNet and VGG."""
    if arch == "alexnet":
        return alexnet_aliases(model)
    if arch.startswith("vgg"):
        return vgg_aliases(model)
    return {}


# Mahendran & Vedaldi §5.2.1: C = 300 up to relu3, 100 up to relu4, 20 up to relu5, 1 after, for
# AlexNet (and VGG-M); for VGG-VD 300 up to conv4_3 (pool4, before conv5_1), 100 for conv5_1, 20
# up to the last conv5, 1 after.
_ALEXNET_C = (("relu3", 300.0), ("relu4", 100.0), ("relu5", 20.0))
_VGG_C = (("pool4", 300.0), ("relu5_1", 100.0), ("relu5_last", 20.0))


def inversion_C_by_depth(arch, aliases):
    """((address, C), ...): the paper's C for the layers up to each address, for AlexNet and VGG."""
    if arch == "alexnet":
        anchors = _ALEXNET_C
    elif arch.startswith("vgg"):
        anchors = _VGG_C
    else:
        return ()
    names = dict(aliases)
    relu5 = sorted(a for a in names if a.startswith("relu5_"))
    if relu5:
        names["relu5_last"] = names[relu5[-1]]
    return tuple((names[alias], c) for alias, c in anchors if alias in names)
