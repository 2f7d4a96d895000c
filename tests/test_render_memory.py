"""The render loop's memory stays flat over the steps on the CPU.

render keeps freed memory in the process (``keep_freed_memory``: glibc's malloc serves large
blocks from the heap and never trims it). Anything small that outlives a step, allocated while a
step's activations are freed, splits those holes, and the heap then grows by about one step's
activations per step: a 40-neuron diverse sweep grew ~50 MB a step until the OOM killer stopped
it. Runs in a fresh process, since the setting is made once per process.
"""

import subprocess
import sys

import pytest

PROBE = r"""
import torch
from torch import nn
from preimage.engine import objectives as O
from preimage.engine.params import ImageParam
from preimage.engine.render import render
from preimage.engine.stopping import Convergence
from preimage.engine.views import Groups
from preimage.models.base import VisionModel

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

torch.manual_seed(0)
torch.set_num_threads(2)
module = nn.Sequential(
    nn.Conv2d(1, 16, 7), nn.ELU(), nn.Conv2d(16, 16, 3), nn.ELU(), nn.Conv2d(16, 8, 3)
)
model = VisionModel(module, name="toy", mean=(0.5,), std=(0.25,), input_size=40, channels=1)
n, steps = 300, 100
seen = []

class Watch(Convergence):  # the real stop criterion, never stopping, watching the memory
    def __call__(self, step, values):
        super().__call__(step, values)
        seen.append(rss())
        return False

objective = O.unit("4", [0] * n) + O.min_distance("1", Groups(6), [1.0] * (n // 6))
render(model, objective, ImageParam(n, 40, channels=1), steps=steps, stop=Watch(), progress=False)
print(max(seen[20:40]), max(seen[-20:]))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_memory_stays_flat_over_the_steps():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=600
    )
    early, late = map(float, out.stdout.split())
    # before the fix: 1714 MB at steps 20-40, 2476 MB by step 70 and still growing
    assert late <= 1.1 * early, (early, late)
