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
    if arch == "alexnet":
        return alexnet_aliases(model)
    if arch.startswith("vgg"):
        return vgg_aliases(model)
    return {}
