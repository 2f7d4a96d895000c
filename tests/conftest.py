import os

import pytest
import torch

# tests run on the CPU, with both cores, deterministically
torch.use_deterministic_algorithms(True, warn_only=True)
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def lite0():
    import preimage

    return preimage.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def alexnet():
    import preimage

    return preimage.load_model("alexnet", weights="random", seed=1)
