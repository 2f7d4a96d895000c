"""Where jobs run: in this process, or on Ray (a local cluster, or one joined by address).

An executor's ``run(specs, on_start)`` yields ``(spec, result, error)`` as jobs
finish, in any order; ``error`` is a traceback string or None. Results come
back to the driver, which alone writes the campaign folder, and a weights file
goes out from it, so Ray workers on other machines need no shared file system.
"""

from __future__ import annotations

import os
import traceback

from ..errors import PreimageError
from .jobs import run_job, weights_bytes


def default_threads(workers):
    """Torch threads per worker so that workers x threads fills the cores without oversubscribing
    them.
    """
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class LocalExecutor:
    """One job at a time, in this process, with ``threads`` torch threads."""

    name = "local"

    def __init__(self, threads=None):
        self.threads = threads

    def run(self, specs, on_start):
        for spec in specs:
            on_start(spec)
            try:
                yield spec, run_job(spec, self.threads), None
            except Exception:
                yield spec, None, traceback.format_exc()

    def close(self):
        pass


class RayExecutor:
    """Jobs as Ray tasks, each asking for ``threads`` CPUs (and a GPU when the device is CUDA).

    address None starts a local cluster of ``workers`` x ``threads`` CPUs;
    otherwise it joins that cluster (every node needs preimage installed), and
    ``workers`` sets the jobs in flight (twice as many are submitted, so that
    no worker waits for the driver).
    """

    name = "ray"

    def __init__(self, workers=None, threads=None, address=None, device="cpu"):
        if address:
            _token_mode_for_joining()
        try:
            import ray
        except ImportError:
            raise PreimageError(
                "--executor ray needs Ray: pip install 'preimage[atlas]' (or pip install ray)"
            ) from None
        self.ray = ray
        self.workers = int(workers or 2)
        if self.workers < 1:
            raise PreimageError(f"bad --workers {workers}; it must be at least 1")
        self.threads = int(threads or default_threads(self.workers))
        gpu = str(device).startswith("cuda")
        if not ray.is_initialized():
            if address:
                _check_reachable(address)
                try:
                    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
                except Exception as e:
                    raise PreimageError(
                        f"bad --ray-address {address!r}: could not join a Ray cluster there"
                        f" ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
                    ) from None
            else:
                ray.init(
                    num_cpus=self.workers * self.threads,
                    num_gpus=None if gpu else 0,
                    include_dashboard=False,
                    logging_level="ERROR",
                    log_to_driver=False,
                    object_store_memory=256 * 1024**2,
                    runtime_env={
                        "env_vars": {"OMP_NUM_THREADS": str(self.threads), "TQDM_DISABLE": "1"}
                    },
                )
        if gpu and ray.cluster_resources().get("GPU", 0) < 1:
            ray.shutdown()
            raise PreimageError(
                f"bad --device {device!r}: the Ray cluster has no GPU, and a job asking for one"
                " would wait forever; use --device cpu"
            )
        # a worker that dies (a preempted node, the OOM killer) is retried twice by Ray; an
        # exception inside a job is not retried: it fails the job, and rerunning the command
        # retries it
        self.remote = ray.remote(num_cpus=self.threads, num_gpus=1 if gpu else 0, max_retries=2)(
            run_job
        )

    def run(self, specs, on_start):
        ray = self.ray
        queue = list(specs)
        flying = {}
        files = {}  # a weights file is put in the object store once, for workers on any node
        while queue or flying:
            # two jobs per worker in flight: the next one waits in Ray's queue while the driver
            # commits
            while queue and len(flying) < 2 * self.workers:
                spec = queue.pop(0)
                on_start(spec)
                path = spec.get("weights")
                if path not in files:
                    data = weights_bytes(spec)
                    files[path] = None if data is None else ray.put(data)
                flying[self.remote.remote(spec, self.threads, files[path])] = spec
            ready, _ = ray.wait(list(flying), num_returns=1)
            for ref in ready:
                spec = flying.pop(ref)
                try:
                    yield spec, ray.get(ref), None
                except Exception as e:
                    yield spec, None, str(e)

    def close(self):
        self.ray.shutdown()


def _token_mode_for_joining():
    """`ray start --head` enables token authentication by default, and a client joins such a
    cluster only in token mode (read when Ray is imported); a token-mode client also joins a
    cluster without authentication, so token mode is used whenever a token is at hand."""
    token = os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(
        os.path.expanduser("~/.ray/auth_token")
    )
    if token and not os.environ.get("RAY_AUTH_MODE"):
        os.environ["RAY_AUTH_MODE"] = "token"


def _check_reachable(address, timeout=5.0):
    """Fail fast on a HOST:PORT nobody listens on: Ray itself retries for minutes."""
    import socket

    host, sep, port = address.rpartition(":")
    if address == "auto" or not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise PreimageError(
            f"bad --ray-address {address!r}: nothing answers there"
            f" ({e.strerror or type(e).__name__}); start the head with `ray start --head`, or use"
            " auto"
        ) from None


def make_executor(kind, workers=None, threads=None, address=None, device="cpu"):
    """The executor --executor names: 'local' (one job at a time, in this process) or 'ray'
    (``RayExecutor``), each job with ``threads`` torch threads; flags the kind does not take are
    refused.
    """
    if kind == "local":
        if address:
            raise PreimageError("--ray-address needs --executor ray")
        if workers not in (None, 1):
            raise PreimageError(
                f"bad --workers {workers} with --executor local, which runs one job at a time; use"
                " --executor ray for more"
            )
        return LocalExecutor(threads)
    if kind == "ray":
        return RayExecutor(workers, threads, address, device)
    raise PreimageError(f"bad --executor {kind!r}; valid: local, ray")
