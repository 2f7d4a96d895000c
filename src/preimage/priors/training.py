"""Natural-image priors on patches: the PixelCNN++, its training, and the Gaussian baselines.

Patches come from natural images at their own resolution. Each image is split
by rows: the top 80 % gives training patches, the bottom 20 % held-out ones,
so no held-out pixel was seen in training. Likelihoods are reported in bits
per dimension (bpd): -log2 P(x) / (3 x H x W) for 8-bit values. The Gaussian
and mixture baselines are densities on dequantized values (x + u, u uniform
in [0, 1) in 0-255 units), whose bpd bounds that of a discrete model from
above, the usual way to compare them with a discrete PixelCNN++.
"""

from __future__ import annotations

import math
import os
import time
from importlib import resources

import numpy as np
import torch
from tqdm.auto import tqdm  # a notebook bar in Jupyter, a text bar in a terminal

from ..errors import PreimageError
from ..io.files import atomic_write
from ..io.images import IMAGE_SUFFIXES, read_rgb
from ..io.samples import sample_arrays
from .pixelcnn import PixelCNNPP, PixelCNNPrior

HELD_OUT_SHARE = 0.2
DEFAULT_PRIOR = "pixelcnn_default.pt"


# -- data --------------------------------------------------------------------------------------


def natural_arrays(source="samples"):
    """[(name, H x W x 3 uint8)] at native resolution: the sample photographs or every image in a
    folder.
    """
    if source in (None, "samples"):
        return sample_arrays()
    if not os.path.isdir(source):
        raise PreimageError(
            f"bad --images {source!r}: not a folder; give a folder of images or 'samples'"
        )

    files = sorted(f for f in os.listdir(source) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise PreimageError(
            f"bad --images {source!r}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    out = []
    for f in files:
        out.append((f, read_rgb(os.path.join(source, f))))
    return out


def patches(arrays, patch, count, split="train", seed=0):
    """count random patch x patch crops (N x 3 x P x P uint8) from the train or held-out rows of
    each image.
    """
    if split not in ("train", "test"):
        raise ValueError(split)
    rng = np.random.default_rng(seed + (0 if split == "train" else 1_000_003))
    regions = []
    for _, a in arrays:
        h = a.shape[0]
        cut = int(round(h * (1 - HELD_OUT_SHARE)))
        region = a[:cut] if split == "train" else a[cut:]
        if region.shape[0] >= patch and region.shape[1] >= patch:
            regions.append(region)
    if not regions:
        raise PreimageError(
            f"bad --patch {patch}: no image has a {split} region of at least {patch}x{patch} pixels"
        )
    out = np.empty((count, 3, patch, patch), dtype=np.uint8)
    which = rng.integers(len(regions), size=count)
    for i, k in enumerate(which):
        r = regions[k]
        top = rng.integers(r.shape[0] - patch + 1)
        left = rng.integers(r.shape[1] - patch + 1)
        out[i] = r[top : top + patch, left : left + patch].transpose(2, 0, 1)
    return out


def to_unit(batch_uint8):
    """N x 3 x H x W uint8 patches -> a float tensor in [0, 1]."""
    return torch.from_numpy(batch_uint8).float() / 255.0


# -- the packaged prior and checkpoints -------------------------------------------------------


def load_prior(spec, device="cpu"):
    """--prior: 'default' (the checkpoint inside the package) or a file written by
    `preimage prior train`.
    """
    if spec == "default":
        path = resources.files("preimage") / "data" / DEFAULT_PRIOR
        if not path.is_file():
            raise PreimageError(
                "the packaged prior is missing from this install; train one with `preimage prior"
                " train` and pass --prior FILE"
            )
        path = str(path)
    else:
        path = spec
        if not os.path.isfile(path):
            raise PreimageError(
                f"bad --prior {spec!r}: no such file; give 'default' or a file written by `preimage"
                " prior train`"
            )
    from ..models.weights import why_unreadable

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's bad value
        raise PreimageError(f"bad --prior {spec!r}: {why_unreadable(e)}") from None
    try:
        prior = PixelCNNPrior.from_checkpoint(data)
    except Exception:  # a file of tensors, but not of a prior
        raise PreimageError(
            f"bad --prior {spec!r}: not a PixelCNN++ checkpoint; give 'default' or a file"
            " written by `preimage prior train`"
        ) from None
    from ..models.weights import non_finite

    bad = non_finite(prior.network.state_dict())
    if bad is not None:
        raise PreimageError(f"bad --prior {spec!r}: it holds NaN or infinite values in {bad!r}")
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    return prior.to(device)


def _save(path, obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


# -- training ------------------------------------------------------------------------------------


@torch.no_grad()
def held_out_bpd(prior, test, chunk=64):
    """Mean bits per dimension of uint8 patches (N x 3 x P x P)."""
    prior.eval()
    total = 0.0
    for start in range(0, len(test), chunk):
        total += float(
            prior.bits_per_dim(
                to_unit(test[start : start + chunk]).to(next(prior.parameters()).device)
            ).sum()
        )
    return total / len(test)


def train(
    out,
    images="samples",
    patch=32,
    steps=2000,
    batch=32,
    lr=1e-3,
    network=None,
    held_out=512,
    eval_every=200,
    save_every=200,
    seed=0,
    device="cpu",
    progress=True,
    log=print,
):
    """Train a PixelCNN++ on random patches; resume from ``out`` if it holds a checkpoint of the
    same run.

    The checkpoint (model, optimizer, step, held-out history) is written
    atomically every ``save_every`` steps and at the end.
    """
    network = network or {"filters": 32, "resnets": 2, "scales": 2, "mixtures": 5}
    arrays = natural_arrays(images)
    test = patches(arrays, patch, held_out, "test", seed)
    torch.manual_seed(seed)
    prior = PixelCNNPrior(PixelCNNPP(**network), patch=patch, trained_on=images).to(device)
    opt = torch.optim.Adam(prior.parameters(), lr=lr)
    start, history, best = _resume(out, prior, opt, patch, log)
    # patches are drawn per block of save_every steps from seed + step, so a run resumed
    # from a checkpoint sees the patches the uninterrupted run would have seen
    rng_seed = seed
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.9995 ** (start + k))
    t0 = time.perf_counter()
    bar = tqdm(range(start, steps), desc="prior", disable=not progress, initial=start, total=steps)
    train_bpd = float("nan")
    for step in bar:
        if (step - start) % save_every == 0:
            pool = patches(arrays, patch, batch * save_every, "train", rng_seed + step)
            pool = np.concatenate([pool, pool[..., ::-1]])  # mirror images are natural images too
            order = np.random.default_rng(rng_seed + step).permutation(len(pool))
        idx = order[
            ((step - start) % save_every) * batch : ((step - start) % save_every + 1) * batch
        ]
        x = to_unit(np.ascontiguousarray(pool[idx])).to(device)
        prior.train()
        loss = prior.bits_per_dim(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 10.0)
        opt.step()
        sched.step()
        train_bpd = (
            0.98 * train_bpd + 0.02 * float(loss.detach())
            if math.isfinite(train_bpd)
            else float(loss.detach())
        )
        bar.set_postfix(bpd=f"{train_bpd:.3f}")
        done = step + 1
        if done % eval_every == 0 or done == steps:
            best = _evaluate(prior, test, history, best, done, train_bpd, t0, log)
        if done % save_every == 0 or done == steps:
            prior.steps = done
            _save(
                out,
                {
                    **prior.checkpoint(),
                    "optimizer": opt.state_dict(),
                    "history": history,
                    "best": best,
                },
            )
    prior.steps = steps
    return prior, history


def _resume(out, prior, opt, patch, log):
    """(first step, history, best model) of a run resumed from ``out``, or of a new one."""
    if not os.path.isfile(out):
        return 0, [], None
    state = torch.load(out, map_location="cpu", weights_only=True)
    if state.get("config") != prior.network.config or state.get("patch") != patch:
        raise PreimageError(
            f"bad --out {out!r}: it holds a prior of another configuration"
            f" ({state.get('config')}, patch {state.get('patch')}); give a new file to train"
            " from scratch"
        )
    prior.network.load_state_dict(state["state_dict"])
    if "optimizer" in state:
        opt.load_state_dict(state["optimizer"])
    start = int(state.get("steps", 0))
    log(f"resuming from step {start} of {out}")
    return start, list(state.get("history", [])), state.get("best")


def _evaluate(prior, test, history, best, done, train_bpd, t0, log):
    """Append the held-out figure to the history; returns the best model seen so far."""
    history.append(
        {
            "step": done,
            "train_bpd": train_bpd,
            "held_out_bpd": held_out_bpd(prior, test),
            "seconds": time.perf_counter() - t0,
        }
    )
    log(f"step {done}: train {train_bpd:.3f} bpd, held out {history[-1]['held_out_bpd']:.3f} bpd")
    # Adam's steps make the held-out figure wander: keep the best model seen, which is what gets
    # exported
    if best is None or history[-1]["held_out_bpd"] < best["held_out_bpd"]:
        state = {k: v.detach().clone() for k, v in prior.network.state_dict().items()}
        best = {"step": done, "held_out_bpd": history[-1]["held_out_bpd"], "state_dict": state}
    return best


def export(checkpoint, out, half=True):
    """The best model (by held-out bpd) of a training checkpoint, without the optimizer, in float16,
    for shipping.
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    small = {k: v for k, v in state.items() if k not in ("optimizer", "best")}
    if state.get("best"):
        small.update(
            state_dict=state["best"]["state_dict"],
            steps=state["best"]["step"],
            held_out_bpd=state["best"]["held_out_bpd"],
        )
    if half:
        small["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in state["state_dict"].items()
        }
    _save(out, small)


# -- baselines and evaluation ---------------------------------------------------------------------


def _dequantized(batch_uint8, seed):
    rng = np.random.default_rng(seed)
    x = batch_uint8.reshape(len(batch_uint8), -1).astype(np.float64)
    return x + rng.random(x.shape)


def gaussian_bpd(train_patches, test_patches, seed=0):
    """A full-covariance Gaussian fitted to the training patches, scored on the held-out ones."""
    from scipy.stats import multivariate_normal

    x = _dequantized(train_patches, seed)
    y = _dequantized(test_patches, seed + 1)
    cov = np.cov(x, rowvar=False) + 1e-3 * np.eye(x.shape[1])
    logp = multivariate_normal(mean=x.mean(0), cov=cov).logpdf(y)
    return float(-logp.mean() / (y.shape[1] * math.log(2)))


def gmm_bpd(train_patches, test_patches, components=8, seed=0):
    """A Gaussian mixture (full covariances, scikit-learn's EM) fitted to the training patches."""
    from sklearn.mixture import GaussianMixture

    x = _dequantized(train_patches, seed)
    y = _dequantized(test_patches, seed + 1)
    gmm = GaussianMixture(
        n_components=components,
        covariance_type="full",
        reg_covar=1e-3,
        max_iter=100,
        random_state=seed,
    ).fit(x)
    return float(-gmm.score_samples(y).mean() / (y.shape[1] * math.log(2)))


def evaluate(
    prior, images="samples", train_count=20000, test_count=2000, components=8, seed=0, log=print
):
    """Held-out bits per dimension of the PixelCNN++ and of the two Gaussian baselines, on the
    prior's patch size.
    """
    arrays = natural_arrays(images)
    patch = prior.patch
    train_p = patches(arrays, patch, train_count, "train", seed)
    test_p = patches(arrays, patch, test_count, "test", seed)
    t = time.perf_counter()
    result = {
        "patch": patch,
        "train_patches": train_count,
        "test_patches": test_count,
        "images": images,
        "gmm_components": components,
    }
    result["pixelcnn_bpd"] = held_out_bpd(prior, test_p)
    log(f"PixelCNN++: {result['pixelcnn_bpd']:.3f} bpd ({time.perf_counter() - t:.0f} s)")
    result["gaussian_bpd"] = gaussian_bpd(train_p, test_p, seed)
    log(f"full-covariance Gaussian: {result['gaussian_bpd']:.3f} bpd")
    result["gmm_bpd"] = gmm_bpd(train_p, test_p, components, seed)
    log(f"Gaussian mixture ({components} components): {result['gmm_bpd']:.3f} bpd")
    return result
