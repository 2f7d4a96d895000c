"""A fitted model of recorded neurons (``preimage neurons fit``) as a VisionModel: ``--model
neurons --weights DIR/model.pt``. Its layer ``neurons`` has one channel per neuron."""

from __future__ import annotations

from ...errors import PreimageError

THRESHOLD = 0.85  # Ding et al.'s varied exciting inputs keep 85 % of the best activation


def vision_model(net, config):
    """The network with the data's preprocessing and the hints of a model of neurons."""
    from ..registry import wrap_model

    c = int(config["channels"])
    m, s = config["zscore"]
    members = int(config["ensemble"])
    first = 1 if members > 1 else 0  # the first member ``neurons`` averages
    core = f"cores.{first if config['core'] == 'cnn' else 0}.output"
    best, held = config.get("best_training"), config.get("best_training_held_out")
    model = wrap_model(
        net,
        mean=(m,) * c,
        std=(s,) * c,
        input_size=int(config["size"][0]),
        name="neurons",
        channels=c,
        fixed_input_size=True,  # the readouts are sized to the core's map at the data's size
        preceding={"neurons": core, "held_out": core},
        diversity_threshold=THRESHOLD,
        image_norm=float(config["image_norm"]),
        pixel_range=tuple(config["pixel_range"]),
        reference={
            **({"neurons": list(best)} if best else {}),
            **({"held_out": list(held)} if held else {}),
        },
        held_out={"neurons": "held_out"} if members > 1 else {},
        data_scale=float(config.get("data_scale", 1.0)),
    )
    return model


def load_neurons(weights=None, seed=0):
    """The model in a model.pt written by `preimage neurons fit`."""
    from ...neurons.network import load

    if weights in (None, "imagenet", "random"):
        raise PreimageError(
            f"bad --weights {weights!r} for --model neurons; give the model.pt that `preimage"
            " neurons fit` wrote"
        )
    import os

    if not os.path.isfile(weights):
        raise PreimageError(f"weights file {weights!r} does not exist; give a model.pt")
    net, config = load(weights)
    model = vision_model(net, config)
    model.weights = weights
    return model
