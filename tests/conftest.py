import os

# cuBLAS is deterministic only with a fixed workspace, which must be set before CUDA starts
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

# tests run on the CPU, with both cores, deterministically
torch.use_deterministic_algorithms(True, warn_only=True)
os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked cuda run only where CUDA is available (PREIMAGE_CUDA_TEST_DEVICE=cpu runs them
    on the CPU instead, to check the tests themselves)."""
    if torch.cuda.is_available() or os.environ.get("PREIMAGE_CUDA_TEST_DEVICE"):
        return
    skip = pytest.mark.skip(
        reason="no CUDA device on this machine (benchmarks/gpu_check.sh runs them)"
    )
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lite0():
    import preimage

    return preimage.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def alexnet():
    import preimage

    return preimage.load_model("alexnet", weights="random", seed=1)
