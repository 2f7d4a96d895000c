"""Receptive fields against Mahendran & Vedaldi's Tables 1 and 3, and against gradients."""

import pytest
import torch
from torch import nn

import preimage

# Table 1 (AlexNet): the layers torchvision's AlexNet shares (it has no LRN "norm" layers)
TABLE_1 = {
    "conv1": (11, 4),
    "relu1": (11, 4),
    "pool1": (19, 8),
    "conv2": (51, 8),
    "relu2": (51, 8),
    "pool2": (67, 16),
    "conv3": (99, 16),
    "relu3": (99, 16),
    "conv4": (131, 16),
    "relu4": (131, 16),
    "conv5": (163, 16),
    "relu5": (163, 16),
    "pool5": (195, 32),
    "fc6": (355, 32),
    "relu6": (355, 32),
    "fc7": (355, 32),
    "relu7": (355, 32),
    "fc8": (355, 32),
}

# Table 3 (VGG-VD-16)
TABLE_3 = {
    "conv1_1": (3, 1),
    "relu1_1": (3, 1),
    "conv1_2": (5, 1),
    "relu1_2": (5, 1),
    "pool1": (6, 2),
    "conv2_1": (10, 2),
    "relu2_1": (10, 2),
    "conv2_2": (14, 2),
    "relu2_2": (14, 2),
    "pool2": (16, 4),
    "conv3_1": (24, 4),
    "relu3_1": (24, 4),
    "conv3_2": (32, 4),
    "relu3_2": (32, 4),
    "conv3_3": (40, 4),
    "relu3_3": (40, 4),
    "pool3": (44, 8),
    "conv4_1": (60, 8),
    "relu4_1": (60, 8),
    "conv4_2": (76, 8),
    "relu4_2": (76, 8),
    "conv4_3": (92, 8),
    "relu4_3": (92, 8),
    "pool4": (100, 16),
    "conv5_1": (132, 16),
    "relu5_1": (132, 16),
    "conv5_2": (164, 16),
    "relu5_2": (164, 16),
    "conv5_3": (196, 16),
    "relu5_3": (196, 16),
    "pool5": (212, 32),
    "fc6": (404, 32),
    "relu6": (404, 32),
    "fc7": (404, 32),
    "relu7": (404, 32),
    "fc8": (404, 32),
}


def _table(model):
    return {info.alias: (info.rf_size, info.rf_stride) for info in model.layers() if info.alias}


def test_alexnet_matches_table_1(alexnet):
    got = _table(alexnet)
    assert {k: got[k] for k in TABLE_1} == TABLE_1


def test_vgg16_matches_table_3():
    vgg = preimage.load_model("vgg16", weights="random")
    got = _table(vgg)
    assert {k: got[k] for k in TABLE_3} == TABLE_3


# EfficientNet-Lite at its input size: the head's receptive field adds (k - 1) * stride for each
# block's depthwise k x k conv, (k, stride, blocks) per stage: Lite0 (3, 1, 1), (3, 2, 2),
# (5, 2, 2), (3, 2, 3), (5, 1, 3), (5, 2, 4), (3, 1, 1) after the 3 x 3 stem at stride 2, 851;
# Lite1 and Lite2 repeat stages 2-6 once more each (3, 3, 4, 4, 5 blocks), 1115. The pooled
# classifier sees the head's field widened by (cells - 1) * 32.
LITE = {
    "efficientnet_lite0": (224, 16, (1280, 7, 7), 851, 851 + 6 * 32),
    "efficientnet_lite1": (240, 21, (1280, 8, 8), 1115, 1115 + 7 * 32),
    "efficientnet_lite2": (260, 21, (1280, 9, 9), 1115, 1115 + 8 * 32),
}


@pytest.mark.parametrize("name", sorted(LITE))
def test_same_padding_networks(name, lite0):
    size, blocks, head, head_rf, fc_rf = LITE[name]
    # the architecture alone gives the table: random weights need no weights package
    model = lite0 if name == lite0.name else preimage.load_model(name, weights="random")
    assert model.input_size == size and len(model.module._blocks) == blocks
    table = {info.name: info for info in model.layers()}
    # stem 3x3 stride 2, then a 3x3 depthwise conv at stride 2: 3 + 2*2
    assert (table["_blocks.0"].rf_size, table["_blocks.0"].rf_stride) == (7, 2)
    assert (table["_blocks.1"].rf_size, table["_blocks.1"].rf_stride) == (11, 4)
    assert table["_conv_head"].shape == head
    assert (table["_conv_head"].rf_size, table["_conv_head"].rf_stride) == (head_rf, 32)
    assert table["_fc"].rf_size == fc_rf and table["_fc"].shape == (1000,)


def test_residual_networks():
    resnet = preimage.load_model("resnet50", weights="random")
    # the commonly quoted receptive field of ResNet-50's last stage
    assert {i.name: i.rf_size for i in resnet.layers()}["layer4"] == 427


class _Toy(nn.Module):
    """Convolutions, pooling, asymmetric padding, a residual branch and a dilated conv;
    all linear.
    """

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3, stride=2)
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.b = nn.Conv2d(2, 2, 5, padding=2)
        self.skip = nn.Conv2d(2, 2, 1)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.c = nn.Conv2d(2, 1, 3, dilation=2, padding=2)

    def forward(self, x):
        x = self.a(self.pad(x))
        x = self.b(x) + self.skip(x)
        return self.c(self.pool(x))


@pytest.mark.parametrize("layer", ["a", "b", "pool", "c"])
def test_receptive_box_is_the_gradient_support(layer):
    torch.manual_seed(0)
    toy = _Toy()
    with torch.no_grad():
        for p in toy.parameters():
            p.copy_(p.abs() + 0.1)  # positive weights: no cancellation inside the field
    model = preimage.wrap_model(toy, input_size=65)
    info = model.layer_info(layer)
    top, bottom, left, right = info.receptive_box()
    x = torch.zeros(1, 3, 65, 65, requires_grad=True)
    out = model.activations(x, [layer])[layer]
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    support = x.grad[0].abs().sum(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    assert (int(rows.min()), int(rows.max()) + 1) == (max(top, 0), min(bottom, 65))
    assert (int(cols.min()), int(cols.max()) + 1) == (max(left, 0), min(right, 65))
