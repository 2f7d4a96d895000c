"""How long a campaign takes: the network's forward and backward passes timed here."""

from __future__ import annotations

import time

CALIBRATION_PIXELS = 2**19  # the largest batch timed by --plan, in pixels


def seconds_per_image_step(model, layer, size, batch=2, repeats=2):
    """Measured forward + backward time of one image through the network up to ``layer`` at size x
    size.
    """
    import torch

    x = torch.rand(batch, model.channels, size, size, device=model.device, requires_grad=True)

    def once():
        a = model.activations(x, [layer])[layer]
        a.float().mean().backward()

    once()  # warm-up: allocations, the fused copy of the network
    t = time.perf_counter()
    for _ in range(repeats):
        once()
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / (repeats * batch)


def estimate(model, specs, workers=1, progress=None):
    """Per layer and in total: jobs, image-steps and estimated seconds, timed on this machine.

    The time is the network's forward and backward passes at each job's image
    size, measured here, times the job's image-steps; parameterization,
    transforms and early stopping (which shortens runs) are not counted.
    """
    rates, rows = {}, {}
    for spec in specs:
        # timed at the job's own batch where it fits, since small images are cheaper per image in a
        # batch
        batch = max(1, min(spec["batch"], CALIBRATION_PIXELS // spec["pixels"] ** 2))
        key = (spec["layer"], spec["pixels"], batch)
        if key not in rates:
            rates[key] = seconds_per_image_step(model, spec["layer"], spec["pixels"], batch=batch)
            if progress:
                progress(key, rates[key])
        alias = model.layer_info(spec["layer"]).alias
        row = rows.setdefault(
            spec["layer"],
            {
                "layer": spec["layer"],
                "alias": alias or "",
                "units": set(),
                "jobs": 0,
                "image_steps": 0,
                "seconds": 0.0,
            },
        )
        row["units"].update(spec["units"])
        row["jobs"] += 1
        row["image_steps"] += spec["image_steps"]
        row["seconds"] += spec["image_steps"] * rates[key]
    table = [{**r, "units": len(r["units"])} for r in rows.values()]
    total = {
        "jobs": sum(r["jobs"] for r in table),
        "image_steps": sum(r["image_steps"] for r in table),
        "seconds": sum(r["seconds"] for r in table),
    }
    total["seconds_per_worker"] = total["seconds"] / max(1, workers)
    total["workers"] = workers
    return (
        table,
        total,
        {f"{layer}@{size}px x{batch}": rate for (layer, size, batch), rate in rates.items()},
    )
