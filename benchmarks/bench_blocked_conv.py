"""The blocked correlation for a first layer's input gradient, ELU in place, and a population
sweep's step.

    python benchmarks/bench_blocked_conv.py [--images 2880] [--rounds 5]

1. The input gradient of a grey cnn core's first layer (16 channels from one, 13 x 13, 40 px):
   oneDNN's own convolution against ``blocked_conv2d`` (the same correlation between 4 x 4
   space-to-depth blocks) in its three versions: a forward convolution between the padded
   input's blocks in channels-first order (``channels_first_blocks``), the same in channels-last
   order (``channels_last_blocks``), and a transposed convolution between the unpadded input's
   blocks (the library's), on 720 images.
2. One optimization step (forward and backward to the image) of the recorded-neurons model that
   a 40-neuron λ sweep runs (40 neurons x 12 λ x 6 images = 2,880 images of 40 px, the default
   three-layer core and factorized readout, through the model's fast copy): as before (oneDNN's
   input gradient, ELU out of place), with the blocked path (channels-first blocks), with the ELUs
   in place too, with channels-last blocks, and with transposed blocks (the library now).

Medians of alternating rounds in one process, and their ratios (these machines are noisy).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import preimage.models.fast.blocked_conv as bc
import preimage.models.fast.fusion as fusion
from preimage.models.zoo.neurons import vision_model
from preimage.neurons.network import build

CONFIG = dict(
    ensemble=1, neurons=40, seed=0, grid=[16, 24, 24], core="cnn", channels=1, core_channels=16,
    kernels=[13, 3, 3], readout="factorized", zscore=[0.45, 0.2], size=[40, 40],
    image_norm=30.0, pixel_range=[0.0, 1.0],
)  # fmt: skip


def seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def channels_first_blocks(x, kernel, padding, out_size, block=bc.BLOCK):
    """``blocked_conv2d`` as first written: the blocks zero-filled in channels-first order."""
    n, c, h, w = x.shape
    o = kernel.shape[0]
    kb = bc._blocked_kernel(kernel, block)
    u_count, v_count = kb.shape[-2:]
    rows, cols = -(-out_size[0] // block), -(-out_size[1] // block)
    (ph, pw), hb, wb = padding, rows + u_count - 1, cols + v_count - 1
    blocks = x.new_zeros(n, c, block, block, hb, wb)
    window = blocks.permute(0, 1, 4, 2, 5, 3)[
        :, :, ph // block : (ph + h) // block, :, pw // block : (pw + w) // block
    ]
    window.copy_(x.reshape(n, c, h // block, block, w // block, block))
    y = F.conv2d(blocks.reshape(n, c * block * block, hb, wb), kb)
    y = y.reshape(n, o, block, block, rows, cols).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(n, o, rows * block, cols * block)[:, :, : out_size[0], : out_size[1]]


def channels_last_blocks(x, kernel, padding, out_size, block=bc.BLOCK):
    """``blocked_conv2d`` as second written: a forward convolution between the padded input's
    blocks, in channels-last order, zeros written only on the border blocks."""
    n, c, h, w = x.shape
    o = kernel.shape[0]
    kb = bc._blocked_kernel(kernel, block)
    u_count, v_count = kb.shape[-2:]
    rows, cols = -(-out_size[0] // block), -(-out_size[1] // block)
    ph, pw = padding
    need_h, need_w = (rows + u_count - 1) * block, (cols + v_count - 1) * block
    hb, wb = need_h // block, need_w // block
    # The blocks in channels-last order (n, hb, wb, c, a, e): oneDNN runs this convolution of many
    # channels over a small map 2.4x faster than in channels-first order.
    if all(v % block == 0 for v in (ph, pw, h, w)) and ph + h <= need_h and pw + w <= need_w:
        # the blocks written straight from the input, zeros only on the border blocks
        blocks = x.new_empty(n, hb, wb, c, block, block)
        r0, r1, c0, c1 = ph // block, (ph + h) // block, pw // block, (pw + w) // block
        for border in (
            blocks[:, :r0],
            blocks[:, r1:],
            blocks[:, r0:r1, :c0],
            blocks[:, r0:r1, c1:],
        ):
            border.zero_()
        window = blocks[:, r0:r1, c0:c1].permute(0, 3, 1, 4, 2, 5)  # (n, c, rows, a, cols, e)
        window.copy_(x.reshape(n, c, h // block, block, w // block, block))
    else:
        x = F.pad(x, (pw, need_w - w - pw, ph, need_h - h - ph))  # crops where it needs less
        blocks = x.reshape(n, c, hb, block, wb, block).permute(0, 2, 4, 1, 3, 5).contiguous()
    y = F.conv2d(blocks.reshape(n, hb, wb, c * block * block).permute(0, 3, 1, 2), kb)
    y = y.reshape(n, o, block, block, rows, cols).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(n, o, rows * block, cols * block)[:, :, : out_size[0], : out_size[1]]


def first_layer(rounds):
    g = torch.Generator().manual_seed(0)
    kernel = torch.randn(1, 16, 13, 13, generator=g)  # the transposed, flipped 16 -> 1 kernel
    grad_out = torch.randn(720, 16, 28, 28, generator=g)
    grad_out = grad_out.contiguous(memory_format=torch.channels_last)  # as the core's layers are
    runs = {
        "oneDNN": lambda: F.conv2d(grad_out, kernel, padding=12),
        "channels-first blocks": lambda: channels_first_blocks(
            grad_out, kernel, (12, 12), (40, 40)
        ),
        "channels-last blocks": lambda: channels_last_blocks(grad_out, kernel, (12, 12), (40, 40)),
        "transposed blocks": lambda: bc.blocked_conv2d(grad_out, kernel, (12, 12), (40, 40)),
    }
    want = runs["oneDNN"]()
    assert all(torch.allclose(want, run(), atol=1e-3) for run in runs.values())
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, run in runs.items():
            times[k].append(seconds(run))
    return {k: statistics.median(v) for k, v in times.items()}


def sweep_step(images, rounds):
    """Seconds of a step: as before this round (oneDNN's input gradient, ELU out of place), with
    the blocked first layer, and with the ELUs in place too."""
    net = build(CONFIG)
    with_elu = vision_model(net, CONFIG).runner(["neurons"])
    original_elu = fusion._in_place_activations
    fusion._in_place_activations = lambda *a: []
    try:
        without_elu = vision_model(net, CONFIG).runner(["neurons"])
    finally:
        fusion._in_place_activations = original_elu
    x0 = torch.randn(images, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    unit = torch.arange(images) * CONFIG["neurons"] // images

    def step(fast):
        x = x0.clone().requires_grad_(True)
        fast(x)[torch.arange(images), unit].sum().backward()

    original, library = bc.pays, bc.blocked_conv2d
    names = ("before", "blocked", "blocked + ELU in place", "channels-last blocks", "transposed")
    times = {k: [] for k in names}
    try:
        for _ in range(rounds):
            bc.pays, bc.blocked_conv2d = (lambda *a: False), channels_first_blocks
            times["before"].append(seconds(lambda: step(without_elu)))
            bc.pays = original
            times["blocked"].append(seconds(lambda: step(without_elu)))
            times["blocked + ELU in place"].append(seconds(lambda: step(with_elu)))
            bc.blocked_conv2d = channels_last_blocks
            times["channels-last blocks"].append(seconds(lambda: step(with_elu)))
            bc.blocked_conv2d = library
            times["transposed"].append(seconds(lambda: step(with_elu)))
    finally:
        bc.pays, bc.blocked_conv2d = original, library
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2880)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    layer = first_layer(args.rounds)
    base = layer["oneDNN"]
    print(
        "first layer's input gradient, 720 images: "
        + ", ".join(f"{k} {v:.3f} s ({base / v:.2f}x)" for k, v in layer.items()),
        flush=True,
    )
    step = sweep_step(args.images, args.rounds)
    base = step["before"]
    print(
        f"sweep step, {args.images} images: "
        + ", ".join(f"{k} {v:.3f} s ({base / v:.2f}x)" for k, v in step.items()),
        flush=True,
    )


if __name__ == "__main__":
    main()
