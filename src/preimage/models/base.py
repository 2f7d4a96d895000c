"""A vision model as the rest of preimage sees it: a module plus its preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ..errors import PreimageError, suggest
from .layers import capture, split_address, trace_layers


@dataclass
class VisionModel:
    """A frozen ``nn.Module`` with the preprocessing it was trained with.

    Images are N x ``channels`` x H x W in [0, 1] ("display space"): RGB by default, one grey
    channel for a model of recorded neurons. ``preprocess`` maps them to the network's input:
    first linearly onto ``input_range`` (for example (0, 255) for Caffe-style models), then
    ``(x - mean) / std`` per channel (one mean and std per channel, in ``input_range`` units).

    Hints are what a model says about itself to the methods, so that no method tests a model's
    name: ``preceding`` (layer -> the layer a diversity distance uses), ``diversity_threshold``
    (the share of the λ = 0 activation a diverse batch keeps: Cadena et al.'s 0.9, 0.8 for their
    toy complex cells), ``inversion_C`` (one C for every layer, as §5.1 of Mahendran & Vedaldi
    uses 20 for HOG and DSIFT; None: C by depth), ``C_by_depth`` (((address, C), ...): the C of
    the layers up to each address, the paper's choice for AlexNet and VGG; empty: by receptive
    field) and ``jitter`` (the inversion jitter T for every layer; None: a quarter of the layer's
    stride).

    ``layouts`` ({layer: Layout or its text, such as "nhwc" or "tokens:1"}) gives the layout of
    layers whose layout the trace cannot tell or tells wrong; every other layer's is detected
    (``preimage.models.layout``). ``fixed_input_size``: the model runs only at ``input_size``
    (position embeddings), so the methods that would optimize an image the size of a unit's
    receptive field use the input size.

    A model of recorded neurons says how its images are made and judged, as MEI studies do:
    ``image_norm`` (the L2 norm every visualization keeps, in centred units, as ``centering``; None:
    each method's own), ``pixel_range`` (the display-space range the images are clipped to: the
    data's), ``reference`` ({layer: one value per channel that activations are reported
    relative to: each neuron's response to its best training image}), ``held_out`` ({layer: a
    layer that scores the same channels with a model the images were not optimized for}) and
    ``data_scale`` (the data's units per display unit: 255 for uint8 recordings).
    """

    module: nn.Module
    name: str = "model"
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    input_range: tuple = (0.0, 1.0)
    input_size: int = 224
    aliases: dict = field(default_factory=dict)
    classes: list | None = None
    weights: str = "given"
    preceding: dict = field(default_factory=dict)
    diversity_threshold: float = 0.9
    inversion_C: float | None = None
    C_by_depth: tuple = ()
    jitter: int | None = None
    layouts: dict = field(default_factory=dict)
    fixed_input_size: bool = False
    image_norm: float | None = None
    pixel_range: tuple | None = None
    reference: dict = field(default_factory=dict)
    held_out: dict = field(default_factory=dict)
    data_scale: float = 1.0
    interpolation: str = "bicubic"  # how photographs are resized to the model's input
    channels_last: bool = True
    fuse: bool = True
    channels: int = 3
    _tables: dict = field(default_factory=dict, repr=False)
    _layout_maps: dict = field(default_factory=dict, repr=False)
    _fused: tuple | None = field(default=None, repr=False)  # (fast copy, changed, version)
    _affine: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        for m in self.module.modules():
            # an in-place ReLU would overwrite a captured conv output and break backward
            if getattr(m, "inplace", False) is True:
                m.inplace = False
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.channels = int(self.channels)
        # one value stands for every channel, as it always did for an RGB model
        self.mean = self.mean * self.channels if len(self.mean) == 1 else self.mean
        self.std = self.std * self.channels if len(self.std) == 1 else self.std
        self.input_range = tuple(float(v) for v in self.input_range)
        if self.channels < 1 or not len(self.mean) == len(self.std) == self.channels:
            raise PreimageError(
                f"model {self.name}: {len(self.mean)} means and {len(self.std)} stds for"
                f" {self.channels} input channels; give one mean and one std per channel"
            )

    def __repr__(self):
        # the dataclass's own repr prints the whole module and every class name
        classes = f", {len(self.classes)} classes" if self.classes else ""
        grey = f", {self.channels} channel{'s' * (self.channels > 1)}" if self.channels != 3 else ""
        fixed = " (fixed)" if self.fixed_input_size else ""
        return (
            f"VisionModel({self.name!r}, weights {self.weights!r}, input {self.input_size} px"
            f"{fixed}{grey}{classes}, on {self.device}; model.layers(size) lists its layers)"
        )

    # -- device and preprocessing -------------------------------------------------

    @property
    def device(self):
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")

    def to(self, device):
        self.module.to(device)
        if self._fused is not None:
            self._fused[0].to(device)
        return self

    def runner(self, addresses):
        """The module to run when reading ``addresses``.

        A fast copy (see ``fusion``) gives the same values at every address
        except the ones it changes; those are read from the original module.
        The copy is made again when the original's weights were changed since
        (in place, as ``load_state_dict`` does, or by assigning new tensors), so
        it never mixes old folded weights with new shared ones.
        """
        if not self.fuse:
            return self.module
        version = self._weights_version()
        if self._fused is None or self._fused[2] != version:
            from .fast.fusion import fuse

            x = torch.zeros(1, self.channels, self.input_size, self.input_size, device=self.device)
            self._fused = (*fuse(self.module, self.preprocess(x)), version)
        fast, changed, _ = self._fused
        if any(split_address(a)[0] in changed for a in addresses):
            return self.module
        return fast

    def _weights_version(self):
        # in-place writes bump a tensor's version counter; ``.data =`` and new Parameters keep the
        # counters but change the storage (the copy still holds the old one, so it is not reused)
        return tuple(
            (t.data_ptr(), t._version) for t in (*self.module.parameters(), *self.module.buffers())
        )

    def preprocess(self, images):
        """Display-space images (N x C x H x W in [0, 1]) -> network inputs, in the model's memory
        format.
        """
        return self.memory_format(self.normalize(images))

    def normalize(self, images):
        """The preprocessing arithmetic alone: x * scale + shift per channel."""
        scale, shift = self.affine(images)
        return torch.addcmul(shift, images, scale)

    def memory_format(self, inputs):
        if self.channels_last and inputs.dim() == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def affine(self, like):
        """(scale, shift) with preprocess(x) = x * scale + shift, shaped 1 x C x 1 x 1."""
        key = (like.device, like.dtype)
        if key not in self._affine:
            scale, shift = self.centering(like)
            std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
            self._affine[key] = (scale / std, shift / std)
        return self._affine[key]

    def centering(self, like):
        """(scale, shift) with x * scale + shift = the image in input units minus the channel means.

        This is the network input before division by std: the space in which
        penalties (L2, TV, bounded range) and norm constraints are measured,
        like the null-mean image of Mahendran & Vedaldi.
        """
        lo, hi = self.input_range
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
        return torch.full_like(mean, hi - lo), lo - mean

    def display_mean(self):
        """The channel means in display space: the image that preprocesses to zero."""
        lo, hi = self.input_range
        return tuple((m - lo) / (hi - lo) for m in self.mean)

    # -- layers ---------------------------------------------------------------------

    def layers(self, size=None):
        """The layer table (addresses, layouts, canonical shapes, receptive fields) at an input
        size: an int, or (height, width)."""
        size = size or self.input_size
        h, w = (int(size), int(size)) if not isinstance(size, (tuple, list)) else map(int, size)
        key = h if h == w else (h, w)
        if key not in self._tables:
            x = torch.zeros(1, self.channels, h, w, device=self.device)
            try:
                table = trace_layers(self.module, self.preprocess(x), self.aliases)
            except (RuntimeError, AssertionError, ValueError) as e:
                fixed = f" (it runs at {self.input_size} px only)" if self.fixed_input_size else ""
                raise PreimageError(
                    f"model {self.name} cannot run on a {h}x{w} image{fixed}: {_first_line(e)}"
                ) from None
            # the overrides are checked at the input size; at others a layer may not be computed
            self._tables[key] = self._overridden(table, strict=(h, w) == (self.input_size,) * 2)
        return self._tables[key]

    def _overridden(self, table, strict=True):
        from .layout import Layout, parse_layout

        if not self.layouts:
            return table
        given = {}
        for name, layout in self.layouts.items():
            given[self.aliases.get(name, name)] = (
                layout if isinstance(layout, Layout) else parse_layout(layout, name)
            )
        known = {info.name for info in table}
        for name in given if strict else ():
            if name not in known:
                raise PreimageError(
                    f"layout given for unknown layer {name!r} of {self.name}; valid layers:"
                    f" {suggest(name, sorted(known))}"
                )
        out = []
        for info in table:
            layout = given.get(info.name)
            if layout is not None:
                raw = info.raw_shape or info.shape
                if layout.kind == "tokens" and (layout.grid is None or not strict):
                    side = int(round((raw[0] - layout.prefix) ** 0.5)) if len(raw) == 2 else 0
                    layout = Layout("tokens", (side, side), layout.prefix)
                if not layout.fits(raw) and not strict:
                    out.append(info)  # another size's grid: the detected layout, if any
                    continue
                if not layout.fits(raw):
                    raise PreimageError(
                        f"layout {layout} does not fit layer {info.name} of {self.name}, whose"
                        f" output is {' x '.join(map(str, raw))} per image"
                    )
                info = replace(info, layout=layout, shape=layout.canonical_shape(raw))
            out.append(info)
        return out

    def with_layouts(self, layouts):
        """This model with the layouts of some layers given ({layer: Layout or text}), checked
        against its layer table at once."""
        before = self.layouts
        self.layouts = {**before, **layouts}
        self._tables.clear()
        self._layout_maps.clear()
        try:
            self.layers()
        except PreimageError:
            self.layouts = before  # a bad override leaves the model as it was
            self._tables.clear()
            raise
        return self

    def layout_at(self, address, size):
        """The Layout of a layer for inputs of ``size`` (height, width): how capture reads it."""
        key = tuple(size)
        if key not in self._layout_maps:
            self._layout_maps[key] = {info.name: info for info in self.layers(key)}
        info = self._layout_maps[key].get(address)
        if info is None:
            raise PreimageError(
                f"layer {address} of {self.name} is not computed on a {key[0]}x{key[1]} image"
            )
        return info.require_layout(self.name)

    def resolve_layer(self, name):
        """A user's layer name (module path, PATH#K, or paper alias) -> its address."""
        address = self.aliases.get(name, name)
        known = {info.name for info in self.layers()}
        if address in known:
            return address
        path, _ = split_address(address)
        calls = [n for n in known if split_address(n)[0] == path]
        if calls:
            raise PreimageError(
                f"layer {name!r} of {self.name} runs {len(calls)} times in one forward pass;"
                f" address one call: {', '.join(sorted(calls))}"
            )
        valid = list(self.aliases) + [info.name for info in self.layers()]
        raise PreimageError(
            f"unknown layer {name!r} for model {self.name}; valid layers: {suggest(name, valid)}"
            f" (see `preimage layers --model {self.name}`)"
        )

    def layer_info(self, name, size=None):
        """The LayerInfo of a layer (any accepted name) at an input size."""
        address = self.resolve_layer(name)
        for info in self.layers(size):
            if info.name == address:
                return info
        raise PreimageError(
            f"layer {name!r} of {self.name} is not computed on a {size}x{size} image"
        )

    def activations(self, images, layers):
        """Outputs of the named layers for display-space images, stopping at the deepest."""
        return self.activations_of_inputs(self.preprocess(images), layers)

    def activations_of_inputs(self, inputs, layers):
        """Outputs of the named layers for network inputs (already preprocessed)."""
        addresses = [self.resolve_layer(name) for name in layers]
        with capture(self.runner(addresses), addresses, self.layout_at) as c:
            found = c.run(inputs)
        acts = {name: found[a] for name, a in zip(layers, addresses)}
        acts.update(
            {
                f"{n}@prefix": found[f"{a}@prefix"]
                for n, a in zip(layers, addresses)
                if f"{a}@prefix" in found
            }
        )
        return acts

    def logits(self, images):
        """The network's output for display-space images; a model that runs at its input size
        only gets them resized to it (bilinear, antialiased) first."""
        size = self.input_size
        if self.fixed_input_size and tuple(images.shape[-2:]) != (size, size):
            images = torch.nn.functional.interpolate(
                images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        return self.module(self.preprocess(images))


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
