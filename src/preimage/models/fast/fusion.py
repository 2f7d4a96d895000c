"""A faster copy of a frozen model for optimization.

The copy shares every tensor it does not change with the original. In it:

* a BatchNorm2d that reads only a convolution's output is folded into the
  convolution's weights and bias (in eval mode it is an affine map per
  channel). On the CPU, batch norm, padding and activation passes cost more
  than the convolutions of a mobile network (for EfficientNet-Lite0 up to
  ``_blocks.2`` batch norm alone took a quarter of a forward + backward step);
* TF-style "same" padding done by a separate ZeroPad2d is absorbed into the
  convolution: symmetric padding as its padding argument, and the one pixel
  more at the bottom and right of a stride-2 layer as symmetric padding with a
  kernel grown by a leading zero row and column;
* a ReLU or ReLU6 module whose every call reads a folded convolution's output
  is replaced by an identity, and the convolution applies it (``frozen_conv``);
* convolutions whose input gradient pays to compute with forward convolutions
  are routed through ``frozen_conv``.

The copy computes the same values at every address except the folded
convolutions themselves (their output includes the batch norm, and the
activation if fused), the batch norms between a convolution and a fused
activation, and the removed padding modules: ``fuse`` returns those
addresses, and callers use the original module whenever an objective reads
one of them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .frozen_conv import _eligible, speed_up_convolutions


class _Uses(TorchFunctionMode):
    """Counts how many torch calls that compute tensors read each tensor.

    Queries such as ``x.dim()`` or ``x.shape`` also pass through here; they
    return no tensor and do not count as uses.
    """

    def __init__(self):
        super().__init__()
        self.count = {}
        self.alive = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        results = out if isinstance(out, (list, tuple)) else (out,)
        if any(isinstance(r, torch.Tensor) for r in results):
            self.alive.extend(r for r in results if isinstance(r, torch.Tensor))
            for a in list(args) + list(kwargs.values()):
                for t in a if isinstance(a, (list, tuple)) else (a,):
                    if isinstance(t, torch.Tensor):
                        self.count[id(t)] = self.count.get(id(t), 0) + 1
        return out


@dataclass
class _Trace:
    """What one forward pass of a module tree did, by module path and tensor id."""

    module: nn.Module
    calls: dict  # path -> number of calls
    inputs: dict  # path -> [id of its first tensor argument, one per call]
    outputs: dict  # id(tensor) -> paths of the modules that returned it, innermost first
    uses: dict  # id(tensor) -> number of torch calls that read it

    def producer(self, tid, kind=nn.Conv2d):
        """The path of the ``kind`` module that returned tensor ``tid``, or None."""
        return next(
            (
                p
                for p in self.outputs.get(tid, [])
                if isinstance(self.module.get_submodule(p), kind)
            ),
            None,
        )


@torch.no_grad()
def _trace(module, inputs):
    names = {m: n for n, m in module.named_modules() if n}
    calls, ins, outs = {}, {}, {}

    def hook(m, args, out):
        path = names[m]
        calls[path] = calls.get(path, 0) + 1
        if args and isinstance(args[0], torch.Tensor):
            ins.setdefault(path, []).append(id(args[0]))
        if isinstance(out, torch.Tensor):
            outs.setdefault(id(out), []).append(path)

    handles = [m.register_forward_hook(hook) for m in names]
    uses = _Uses()  # keeps every tensor alive, so ids are not reused during the pass
    try:
        with uses:
            module(inputs)
    except RuntimeError:
        pass  # an image too small for the deepest layers: use what ran
    finally:
        for h in handles:
            h.remove()
    return _Trace(module, calls, ins, outs, uses.count)


def _foldable_pairs(module, inputs):
    """(conv path, bn path) where the BN's input is a conv's output that nothing else reads."""
    trace = _trace(module, inputs)
    pairs = []
    for bn, ids in trace.inputs.items():
        if not isinstance(module.get_submodule(bn), nn.BatchNorm2d) or len(ids) != 1:
            continue
        conv = trace.producer(ids[0])
        if conv and trace.uses.get(ids[0]) == 1 and trace.calls.get(conv) == 1:
            pairs.append((conv, bn))
    return pairs


def _clamp_bounds(m):
    if type(m) is nn.ReLU:
        return (0.0, float("inf"))
    if isinstance(m, nn.Hardtanh):  # ReLU6 too
        return (float(m.min_val), float(m.max_val))
    return None


@torch.no_grad()
def _fusable_activations(module, inputs, convs_already_changed):
    """[(activation path, [conv paths], [paths in between], (lo, hi))]: activations to run inside
    the convolutions feeding them.

    An activation module qualifies when every call of it reads the output of a
    convolution called once, whose output nothing else reads, and whose own
    address already differs in the copy (a folded convolution): fusing then
    changes no address that the copy still serves. A module called twice (the
    ReLU6 of an MBConv block) is removed only if both calls qualify.
    """
    trace = _trace(module, inputs)
    found = []
    for act, ids in trace.inputs.items():
        if _clamp_bounds(module.get_submodule(act)) is None:
            continue
        read = _folded_outputs_read(module, trace, ids, convs_already_changed, _eligible)
        if read is not None:
            found.append((act, *read, _clamp_bounds(module.get_submodule(act))))
    return found


def _folded_outputs_read(module, trace, ids, convs_already_changed, also=None):
    """(conv paths, paths in between) when each input ``ids`` of an activation is the output of
    a folded convolution (one whose address the copy no longer serves) called once, that nothing
    else reads, and for which ``also(conv)`` holds; else None. The modules between each conv and
    the activation (folded batch norms, now identities) return the conv's output, which the
    activation will change: they change too."""
    convs = [trace.producer(i) for i in ids]
    if len(set(convs)) != len(convs) or not all(
        c is not None
        and c in convs_already_changed
        and trace.calls.get(c) == 1
        and trace.uses.get(i) == 1
        and (also is None or also(module.get_submodule(c)))
        for c, i in zip(convs, ids)
    ):
        return None
    return convs, [p for i in ids for p in trace.outputs.get(i, []) if p not in convs]


@torch.no_grad()
def _in_place_activations(module, inputs, convs_already_changed):
    """[(ELU path, [paths in between])]: ELUs that may overwrite the convolution output they read.

    In place, ELU's backward reads its output (no exponential again) and its forward allocates
    nothing: on the CPU, forward + backward on a cnn core's first maps (2,880 x 16 x 28 x 28) took
    0.91 s instead of 1.41. The conditions are ``_fusable_activations``' but for the convolution's
    routing (``_folded_outputs_read``).
    """
    trace = _trace(module, inputs)
    found = []
    for act, ids in trace.inputs.items():
        m = module.get_submodule(act)
        if type(m) is not nn.ELU or m.inplace:
            continue
        read = _folded_outputs_read(module, trace, ids, convs_already_changed)
        if read is not None:
            found.append((act, read[1]))
    return found


def _set(root, path, new):
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def _share_tensors_copy(module):
    """A copy of the module tree whose parameters and buffers are the original's tensors."""
    memo = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
    return copy.deepcopy(module, memo)


def _absorb_static_padding(conv):
    """Move a TF-style ZeroPad2d in front of a convolution into the convolution itself.

    Symmetric padding becomes the conv's own padding argument. The asymmetric
    padding of a stride-2 layer (one pixel more at the bottom and right)
    becomes symmetric padding with the larger amount and a kernel grown by a
    leading zero row and column: the same products, without copying the
    input into a padded tensor (for a stride-2 depthwise layer that halves the
    cost of forward + backward). True when the padding was absorbed.
    """
    pad = getattr(conv, "static_padding", None)
    if (
        not isinstance(pad, nn.ZeroPad2d)
        or tuple(conv.padding) != (0, 0)
        or tuple(conv.dilation) != (1, 1)
    ):
        return False
    left, right, top, bottom = pad.padding
    grow_h, grow_w = bottom - top, right - left
    if grow_h not in (0, 1) or grow_w not in (0, 1):
        return False
    if grow_h or grow_w:
        conv.weight = nn.Parameter(F.pad(conv.weight, (grow_w, 0, grow_h, 0)), requires_grad=False)
        conv.kernel_size = tuple(conv.weight.shape[-2:])
    conv.padding = (bottom, right)
    conv.static_padding = nn.Identity()
    return True


@torch.no_grad()
def fuse(module, inputs):
    """(fast copy of module, set of addresses whose outputs differ in the copy).

    The copy shares every tensor it does not change with the original.
    """
    pairs = _foldable_pairs(module, inputs)
    try:
        fast = _share_tensors_copy(module)
    except (
        Exception
    ):  # a user's module that cannot be copied (it holds a lock, a file...): run it as it is
        return module, set()
    changed = set()
    for conv_path, bn_path in pairs:
        conv, bn = fast.get_submodule(conv_path), fast.get_submodule(bn_path)
        scale = (
            bn.weight / torch.sqrt(bn.running_var + bn.eps)
            if bn.affine
            else 1 / torch.sqrt(bn.running_var + bn.eps)
        )
        shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
        conv.bias = nn.Parameter(bias * scale + shift, requires_grad=False)
        _set(fast, bn_path, nn.Identity())
        changed.add(conv_path)
    for path, m in fast.named_modules():
        if isinstance(m, nn.Conv2d) and _absorb_static_padding(m):
            changed.add(f"{path}.static_padding")
    clamps = {}
    for act_path, convs, between, bounds in _fusable_activations(fast, inputs, changed):
        _set(
            fast, act_path, nn.Identity()
        )  # its hooks still see its output: the clamped conv output
        clamps.update({fast.get_submodule(c): bounds for c in convs})
        changed.update(between)
    for act_path, between in _in_place_activations(fast, inputs, changed):
        _set(fast, act_path, nn.ELU(fast.get_submodule(act_path).alpha, inplace=True))
        changed.update(between)
    sped_up = speed_up_convolutions(fast, clamps)
    if not changed and not sped_up:  # nothing to gain: no copy
        return module, set()
    return fast, changed
