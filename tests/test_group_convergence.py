"""Groups that converge leave the batch (``GroupConvergence``), and nothing else changes.

The groups of a diverse sweep are independent, so a group's images must not depend on which
other groups share its batch or when they left it: a run that retires groups gives each group
the images of a run of that group alone, and a retired group keeps the images it had when it
stalled (those of a plain run of exactly that many steps).
"""

import pytest
import torch
from torch import nn

from preimage.engine import objectives as O
from preimage.engine import retirement
from preimage.engine.optim import Optimizer
from preimage.engine.params import ImageParam, NormalizedParam
from preimage.engine.render import render
from preimage.engine.stopping import Convergence, GroupConvergence
from preimage.engine.views import Groups
from preimage.errors import PreimageError
from preimage.models.base import VisionModel

N = 3  # images per group


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ELU(), nn.Conv2d(6, 4, 3))
    return VisionModel(module.double().float(), name="toy", mean=(0.5,), std=(0.25,),
                       input_size=16, channels=1)  # fmt: skip


def objective(groups):
    """One (channel, λ) pair per group of N images, as in a diverse sweep."""
    unit = O.unit("2", [c for c, _ in groups for _ in range(N)])
    return unit + O.min_distance("0", Groups(N), [lam for _, lam in groups])


def param(toy, groups, seed=0):
    """Images of a fixed norm, as in a diverse sweep; the same starting noise for a group whichever
    batch it is in."""
    p = ImageParam(N * len(groups), 16, channels=1, output="linear")
    with torch.no_grad():
        for g, (c, lam) in enumerate(groups):
            noise = torch.Generator().manual_seed(seed + 7 * c + int(100 * lam))
            p.theta[g * N : (g + 1) * N] = 0.01 * torch.randn(p.theta[:N].shape, generator=noise)
    return NormalizedParam(p, 4.0, toy)


def run(toy, groups, stop, steps=400):
    return render(toy, objective(groups), param(toy, groups), optimizer=Optimizer("adam", 0.05),
                  steps=steps, stop=stop, progress=False)  # fmt: skip


def group_stop(groups, patience=15):
    return GroupConvergence(N, lambda kept: objective([groups[g] for g in kept]),
                            patience=patience, rtol=1e-3)  # fmt: skip


GROUPS = [(0, 0.0), (1, 0.5), (2, 2.0), (3, 0.0), (0, 4.0)]


@pytest.mark.parametrize("part_groups", [None, 2], ids=["one part", "parts of 2 groups"])
def test_groups_leave_at_different_steps_with_their_own_images(toy, part_groups, monkeypatch):
    if part_groups:  # each step runs the batch through the network 2 groups at a time
        monkeypatch.setattr(retirement, "PART_PIXELS", part_groups * N * 16 * 16)
    both = run(toy, GROUPS, group_stop(GROUPS))
    per_group = both.element_steps.view(-1, N)
    assert (per_group == per_group[:, :1]).all()  # a group leaves as a whole
    left = per_group[:, 0]
    assert len(set(left.tolist())) > 1 and int(left.min()) < both.steps  # not all at the end
    for g, group in enumerate(GROUPS):
        monkeypatch.undo()
        alone = run(toy, [group], group_stop([group]))
        rows = slice(g * N, (g + 1) * N)
        assert alone.steps == int(left[g])  # alone, it stops at the same step
        torch.testing.assert_close(both.images[rows], alone.images, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(both.objective[rows], alone.objective, rtol=1e-4, atol=1e-5)
        # a retired group keeps the images of a run of exactly its steps
        fixed = run(toy, [group], None, steps=int(left[g]))
        torch.testing.assert_close(both.images[rows], fixed.images, rtol=1e-4, atol=1e-5)


def test_trace_keeps_a_retired_group_at_its_last_value(toy):
    result = run(toy, GROUPS, group_stop(GROUPS))
    first = int(result.element_steps.min())
    rows = (result.element_steps == first).nonzero().flatten()
    tail = result.trace[first - 1 :, rows]
    assert torch.equal(tail, tail[:1].expand_as(tail))
    assert result.trace.shape == (result.steps, len(GROUPS) * N)


def test_group_convergence_is_the_plain_rule_per_group():
    """Values that stop improving at different steps: each group stalls patience steps later."""
    stop = GroupConvergence(2, lambda kept: None, patience=5, rtol=0.0, atol=0.0, smoothing=0.0)
    plain = Convergence(patience=5, rtol=0.0, atol=0.0, smoothing=0.0)
    rises_until = torch.tensor([3, 3, 10, 8])  # group 0 stops rising at 3, group 1 at 10
    for step in range(20):
        v = torch.minimum(torch.full((4,), float(step)), rises_until.double())
        groups, elements = stop.stalled_groups(step, v), plain.stalled(step, v)
        assert torch.equal(groups, elements.view(2, 2).all(1))
        assert bool(groups[0]) == (step >= 3 + 5) and bool(groups[1]) == (step >= 10 + 5)


def test_group_convergence_refuses_shared_parameters(toy):
    class Shared(nn.Module):  # one image tensor shared by every element
        def __init__(self):
            super().__init__()
            self.theta = nn.Parameter(torch.zeros(1, 1, 16, 16))
            self.channels = 1

        def forward(self):
            return self.theta.expand(N, -1, -1, -1) + 0.5

        def set_images(self, images):
            pass

        def describe(self):
            return {}

    with pytest.raises(PreimageError, match="one row per image"):
        render(toy, objective([(0, 1.0)]), Shared(), steps=3, stop=group_stop([(0, 1.0)]),
               progress=False)  # fmt: skip


def test_divergence_in_a_later_part_names_its_term_and_leaves_the_batch_whole(toy, monkeypatch):
    monkeypatch.setattr(retirement, "PART_PIXELS", N * 16 * 16)  # one group per part
    groups = [(0, 0.0), (1, 0.5)]

    def blow_up(kept):  # the second group's objective turns non-finite at once
        def fn(ctx):
            return torch.log(-ctx.activations["2"].flatten(1).abs().mean(1) - 1.0)

        bad = O.Objective(fn, ["2"], "bad-term")
        return objective([groups[g] for g in kept]) + (bad if 1 in kept else 0)

    p = param(toy, groups)
    stop = GroupConvergence(N, blow_up, patience=15)
    with pytest.raises(PreimageError, match=r"step 0: non-finite value in term bad-term"):
        render(toy, objective(groups), p, steps=5, stop=stop, progress=False)
    assert p().shape[0] == 2 * N


def test_no_step_still_gives_every_element_its_steps(toy):
    result = run(toy, GROUPS, group_stop(GROUPS), steps=0)
    assert torch.equal(result.element_steps, torch.zeros(len(GROUPS) * N, dtype=torch.long))
