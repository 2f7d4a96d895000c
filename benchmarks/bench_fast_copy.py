"""What each part of the fast copy and the kept memory buys, measured one by one.

1. Kept memory: a bare forward + backward of 24 images (128 px) to ``_blocks.2`` of
   EfficientNet-Lite0, through the network as loaded, in two fresh processes: glibc's
   malloc as it is, and after ``keep_freed_memory``. Milliseconds and pages faulted in
   per step (malloc's setting is process-wide and one-way, hence the processes).
2. Input gradients as forward convolutions: forward + backward of single convolutions,
   oneDNN's own backward against ``frozen_conv2d``.
3. TF padding absorbed: a stride-2 depthwise layer with a separate pad against the
   kernel grown by a zero row and column.
4. Fused activations: the bare pass to ``_blocks.2`` through the fast copy with and
   without ReLU6 inside the convolutions.
5. The broadcast gradient of a 1x1 convolution: whole render steps (every channel of
   ``_blocks.0`` and of ``_blocks.2``, finzi transforms) with the shortcut and with
   oneDNN's backward for the projection that ends the block.

Medians of alternating rounds in one process (except 1).

    python benchmarks/bench_fast_copy.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

PASS = """
import resource, sys, time, torch
import preimage
from preimage.engine.fast.cpu_memory import keep_freed_memory
from preimage.models.layers import capture
if sys.argv[1] == "kept":
    keep_freed_memory()
model = preimage.load_model("efficientnet_lite0")
x = torch.rand(24, 3, 128, 128, requires_grad=True)
times, faults = [], []
with capture(model.module, ["_blocks.2"]) as c:
    for i in range(12):
        f, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        c.run(model.preprocess(x))["_blocks.2"].mean().backward()
        if i >= 4:
            times.append(time.perf_counter() - t)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)
times.sort(); faults.sort()
print(1000 * times[len(times) // 2], faults[len(faults) // 2])
"""


def timed(fn, reps=10):
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1000


def alternate(fns, rounds):
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: statistics.median(v) for name, v in times.items()}


def forward_backward(conv):
    """Forward, then backward of a random output gradient in the activations' own (channels-last)
    format.
    """

    def run(x):
        grad = torch.randn(conv(x).shape).contiguous(memory_format=torch.channels_last)
        return lambda: torch.autograd.grad(conv(x), x, grad)

    return run


def main():
    from preimage.engine.fast.cpu_memory import keep_freed_memory
    from preimage.models.fast.frozen_conv import frozen_conv2d

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.rounds}"
        " rounds"
    )

    print(
        "1. bare forward + backward, 24 images to _blocks.2, network as loaded (median of 8 steps)"
    )
    for mode in ("default", "kept"):
        out = subprocess.run(
            [sys.executable, "-c", PASS, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        print(
            f"   malloc {mode:8} {float(out[0]):7.1f} ms   {int(out[1]):7d} pages faulted in per"
            " step"
        )

    keep_freed_memory()
    cl = torch.channels_last
    g = torch.Generator().manual_seed(0)
    print(
        "2. one convolution, forward + backward to its input: oneDNN's backward against forward"
        " convolutions"
    )
    cases = [
        ("3x3 depthwise, 32 ch, 16 x 64 x 64", 16, 32, 64, 32, 3, 1, 32, 1),
        ("EfficientNet stem, 3 -> 32, stride 2, 16 x 128", 16, 3, 128, 32, 4, 2, 1, 1),
        ("AlexNet conv1, 3 -> 64, 11x11 stride 4, 8 x 224", 8, 3, 224, 64, 11, 4, 1, 2),
    ]
    for name, n, cin, hw, cout, k, s, groups, p in cases:
        x = torch.randn(n, cin, hw, hw, generator=g).contiguous(memory_format=cl).requires_grad_()
        w = torch.randn(cout, cin // groups, k, k, generator=g).contiguous(memory_format=cl)
        plain = forward_backward(lambda x: F.conv2d(x, w, None, s, p, 1, groups))(x)
        frozen = forward_backward(
            lambda x: frozen_conv2d(x, w, None, (s, s), (p, p, p, p), groups)
        )(x)
        fwd = lambda: F.conv2d(x.detach(), w, None, s, p, 1, groups)  # noqa: E731
        r = alternate({"oneDNN": plain, "forward convs": frozen, "forward alone": fwd}, args.rounds)
        print(
            f"   {name:48} oneDNN {r['oneDNN']:6.2f} ms   forward convs {r['forward convs']:6.2f}"
            f" ms   (forward alone {r['forward alone']:5.2f} ms)"
        )

    print("3. stride-2 3x3 depthwise with TF padding (0, 1), 24 x 96 x 64 x 64, forward + backward")
    x = torch.randn(24, 96, 64, 64, generator=g).contiguous(memory_format=cl).requires_grad_()
    w = torch.randn(96, 1, 3, 3, generator=g)
    grown = F.pad(w, (1, 0, 1, 0))
    r = alternate(
        {
            "padded": forward_backward(
                lambda x: F.conv2d(F.pad(x, (0, 1, 0, 1)), w, None, 2, 0, 1, 96)
            )(x),
            "grown kernel": forward_backward(lambda x: F.conv2d(x, grown, None, 2, 1, 1, 96))(x),
        },
        args.rounds,
    )
    print(
        f"   separate pad {r['padded']:6.2f} ms   kernel grown, symmetric padding"
        f" {r['grown kernel']:6.2f} ms"
    )

    print("4. bare forward + backward, 24 images to _blocks.2, through the fast copy")
    import preimage
    from preimage.models.fast import fusion
    from preimage.models.layers import capture

    fused = preimage.load_model("efficientnet_lite0")
    fused.runner(["_blocks.2"])
    original = fusion._fusable_activations
    fusion._fusable_activations = lambda *a, **k: []
    try:
        unfused = preimage.load_model("efficientnet_lite0")
        unfused.runner(["_blocks.2"])
    finally:
        fusion._fusable_activations = original
    x = torch.rand(24, 3, 128, 128, requires_grad=True)

    def bare(model):
        def run():
            with capture(model.runner(["_blocks.2"]), ["_blocks.2"]) as c:
                c.run(model.preprocess(x))["_blocks.2"].mean().backward()

        return run

    r = alternate({"with": bare(fused), "without": bare(unfused)}, args.rounds)
    print(
        f"   ReLU6 inside the convolutions {r['with']:6.1f} ms   as separate passes"
        f" {r['without']:6.1f} ms"
    )

    print(
        "5. render steps of a channel objective: a 1x1 convolution's broadcast gradient as one"
        " product, or oneDNN's backward"
    )
    from preimage import objectives as O
    from preimage.models.fast import frozen_conv

    shortcut = frozen_conv._constant_over_space

    def step_ms(layer, n, on, steps=12):
        """Milliseconds per step of the render loop alone (no setup, no final evaluation)."""
        frozen_conv._constant_over_space = shortcut if on else (lambda t: False)
        try:
            r = preimage.render(
                fused,
                O.channel(layer, list(range(n))),
                preimage.ImageParam(n, 128, generator=torch.Generator().manual_seed(0)),
                transforms=preimage.parse_transforms("finzi"),
                steps=steps,
                progress=False,
            )
        finally:
            frozen_conv._constant_over_space = shortcut
        return 1000 * r.seconds / steps

    for layer, n in (("_blocks.0", 16), ("_blocks.2", 24)):
        step_ms(layer, n, True, 2), step_ms(layer, n, False, 2)
        pairs = [(step_ms(layer, n, True), step_ms(layer, n, False)) for _ in range(args.rounds)]
        on, off = (statistics.median(p[k] for p in pairs) for k in (0, 1))
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        print(
            f"   {layer}, all {n} channels: broadcast product {on:6.2f} ms a step   oneDNN's"
            f" backward {off:6.2f} ms   ({ratio:.3f}x)"
        )


if __name__ == "__main__":
    main()
