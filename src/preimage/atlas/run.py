"""The atlas driver: open (or resume) a campaign folder, run the jobs not done, commit each as it
finishes.

Crash safety rests on two rules. A job's files are written into a hidden
``jobs/.partial-ID`` folder and renamed to ``jobs/ID`` in one step, so no
reader ever sees half of a job. Only after that rename is the job marked done
in the catalog, in one transaction with its per-unit results. A kill between
the two leaves a complete folder whose job is still pending: it is redone and
its folder replaced.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time

from tqdm.auto import tqdm  # a notebook bar in Jupyter, a text bar in a terminal

from ..errors import PreimageError
from .catalog import Catalog

CATALOG = "catalog.sqlite"
JOBS = "jobs"


class Campaign:
    """A campaign folder held by this process (a lock file keeps a second driver out)."""

    def __init__(self, out):
        self.out = os.path.abspath(out)
        try:
            os.makedirs(os.path.join(self.out, JOBS), exist_ok=True)
            self._lock = open(os.path.join(self.out, ".lock"), "w")
        except OSError as e:
            raise PreimageError(f"bad --out {out!r}: cannot write there ({e.strerror})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise PreimageError(
                f"bad --out {out!r}: another atlas is running on it; wait for it or use another"
                " folder"
            ) from None
        self.catalog = Catalog(os.path.join(self.out, CATALOG))
        self.interrupted = self.catalog.reset_interrupted()
        # a done job whose folder was deleted or emptied by hand is done again
        self.missing = self.catalog.reset_missing(self.out)
        for name in os.listdir(os.path.join(self.out, JOBS)):
            if name.startswith(".partial-"):  # a job killed while its files were being written
                shutil.rmtree(os.path.join(self.out, JOBS, name), ignore_errors=True)

    @staticmethod
    def check(out):
        """Refuse, before any work, a folder another driver holds or one that cannot be written."""
        out = os.path.abspath(out)
        lock = os.path.join(out, ".lock")
        if os.path.isfile(lock):
            with open(lock) as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
                except BlockingIOError:
                    raise PreimageError(
                        f"bad --out {out!r}: another atlas is running on it; wait for it or use"
                        " another folder"
                    ) from None
        existing = out
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
            raise PreimageError(f"bad --out {out!r}: {existing!r} is not a folder it can write in")

    def close(self):
        self.catalog.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def commit(self, spec, result):
        """Write a finished job's files atomically, then mark it done;
        returns the artifact paths.
        """
        final = os.path.join(self.out, JOBS, spec["id"])
        partial = os.path.join(self.out, JOBS, ".partial-" + spec["id"])
        shutil.rmtree(partial, ignore_errors=True)
        for rel, data in result["files"].items():
            path = os.path.join(partial, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(partial)
        if os.path.exists(final):  # left by a driver killed between the rename and the catalog
            shutil.rmtree(final)
        os.rename(partial, final)
        _fsync_dir(os.path.dirname(final))
        prefix = f"{JOBS}/{spec['id']}/"
        artifacts = sorted(prefix + rel for rel in result["files"])
        unit_rows = [
            {**u, "artifacts": {role: prefix + name for role, name in u["artifacts"].items()}}
            for u in result["units"]
        ]
        self.catalog.finish(spec["id"], result, artifacts, unit_rows)
        return artifacts


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _work(spec):
    """A job's cost in pixel-steps: images x steps x image area."""
    return float(spec.get("image_steps") or 1) * float(spec.get("pixels") or 1) ** 2


def _clock(seconds):
    seconds = int(max(0, seconds))
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60:02d}:{seconds % 60:02d}"
    )


def run_campaign(campaign, specs, executor, progress=True, argv=None, config=None):
    """Run every job of ``specs`` that is not done; returns a summary dict."""
    catalog = campaign.catalog
    held = catalog.network()
    if held is not None and specs:
        asked = (specs[0]["model"], specs[0]["weights"], specs[0]["weights_seed"])
        if asked != held:
            # the report keys units by layer and channel: two networks in one folder would mix
            raise PreimageError(
                f"bad --out {campaign.out!r}: it holds an atlas of {held[0]} (weights {held[1]},"
                f" seed {held[2]}), not {asked[0]} (weights {asked[1]}, seed {asked[2]}); use"
                " another folder"
            )
    catalog.record_run(argv or [], config or {})
    catalog.add_jobs(specs)
    status = catalog.status(s["id"] for s in specs)
    todo = [s for s in specs if status.get(s["id"]) != "done"]
    done_before = len(specs) - len(todo)
    # jobs differ in cost by orders of magnitude (a deep layer's diverse sweep against a shallow
    # visualization), so the time left is extrapolated from the work done, not the job count
    left = sum(_work(s) for s in todo)
    bar = tqdm(
        total=len(specs),
        initial=done_before,
        desc="atlas",
        unit="job",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} jobs [{elapsed} elapsed{postfix}]",
    )
    failed, t0, worked = [], time.perf_counter(), 0.0
    try:
        for spec, result, error in executor.run(todo, on_start=lambda s: catalog.start(s["id"])):
            worked += _work(spec)
            eta = (time.perf_counter() - t0) * (left - worked) / max(worked, 1e-9)
            if error is None:
                campaign.commit(spec, result)
                bar.set_postfix_str(
                    f"{_clock(eta)} left; {spec['layer']} {spec['method']}"
                    f" {spec['units'][0]}..{spec['units'][-1]}: {result['seconds']:.0f} s",
                    refresh=False,
                )
            else:
                catalog.fail(spec["id"], error)
                failed.append((spec["id"], error))
                bar.write(
                    f"preimage: job {spec['id']} failed: {error.splitlines()[-1] if error else ''}"
                )
            bar.update(1)
    finally:
        bar.close()
    return CampaignSummary(
        out=campaign.out,
        jobs=len(specs),
        done_before=done_before,
        ran=len(todo),
        failed=failed,
        interrupted_reset=campaign.interrupted,
        missing_redone=campaign.missing,
        wall_seconds=time.perf_counter() - t0,
        counts=catalog.counts(),
    )


class CampaignSummary(dict):
    """What ``run_campaign`` did (a dict); a notebook shows it as the jobs' counts and each
    layer's units, the pictures embedded."""

    def _repr_html_(self):
        from .report import overview_html

        return overview_html(self["out"], self)
