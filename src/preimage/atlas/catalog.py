"""The campaign catalog: one SQLite file holding every job's configuration, status, timings and
results.

Only the driver writes it, one short transaction per event, so a `kill -9` at
any moment leaves it consistent: a job is 'done' only once its artifacts were
renamed into place (see ``commit``), and rows left 'running' by a dead driver
are reset to 'pending' when the campaign is opened again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    layer TEXT NOT NULL,
    method TEXT NOT NULL,
    units TEXT NOT NULL,          -- JSON list of channels
    spec TEXT NOT NULL,           -- JSON: everything that defines the job
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    image_steps INTEGER,          -- planned optimization work, for estimates
    worker TEXT,
    started REAL,
    finished REAL,
    seconds REAL,                 -- time inside the worker
    metrics TEXT,                 -- JSON, job level
    artifacts TEXT,               -- JSON list of paths relative to the campaign folder
    error TEXT
);
CREATE TABLE IF NOT EXISTS unit_results (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    layer TEXT NOT NULL,
    unit INTEGER NOT NULL,
    method TEXT NOT NULL,
    metrics TEXT NOT NULL,        -- JSON
    artifacts TEXT NOT NULL,      -- JSON {role: relative path}
    PRIMARY KEY (job_id, unit, method)
);
CREATE TABLE IF NOT EXISTS runs (
    started REAL NOT NULL,
    argv TEXT NOT NULL,
    config TEXT NOT NULL          -- JSON: the campaign as asked for
);
"""


class Catalog:
    """The campaign's SQLite catalog at ``path``, its tables created if missing: the jobs with their
    status, timings and results, the per-unit rows of done jobs, and every run of the campaign.
    """

    def __init__(self, path):
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(jobs)")}
        if "planned" not in columns:  # a catalog from before the column: added, empty
            self.db.execute("ALTER TABLE jobs ADD COLUMN planned REAL")

    @classmethod
    def reader(cls, path):
        """The catalog at ``path`` for reading only, never changed (a campaign kept in a
        repository stays as committed): read-only, or immutable where SQLite cannot open it so (a
        WAL catalog whose shared-memory file is gone, in a folder it may not write). Raises
        sqlite3.Error for a file that is not a catalog."""
        self = cls.__new__(cls)
        self.path = str(path)
        uri = f"file:{os.path.abspath(path)}?mode=ro"
        for suffix in ("", "&immutable=1"):
            try:
                self.db = sqlite3.connect(uri + suffix, uri=True)
                columns = {row[1] for row in self.db.execute("PRAGMA table_info(jobs)")}
                self.db.execute("SELECT COUNT(*) FROM unit_results").fetchone()
                break
            except sqlite3.OperationalError:
                if suffix:
                    raise
        if not columns:
            raise sqlite3.DatabaseError("it has no jobs table")
        self._order = "j.planned, " if "planned" in columns else ""
        return self

    def close(self):
        self.db.close()

    def _tx(self):
        return _Transaction(self.db)

    def record_run(self, argv, config):
        with self._tx():
            self.db.execute(
                "INSERT INTO runs VALUES (?, ?, ?)",
                (time.time(), json.dumps(argv), json.dumps(config)),
            )

    def add_jobs(self, specs):
        """Insert the jobs not yet known; known ones (same id, so same configuration) keep their
        state. Every job this run plans is stamped with its time (``planned``): the report prefers
        the jobs the latest command asked for.
        """
        now = time.time()
        with self._tx():
            for spec in specs:
                self.db.execute(
                    "INSERT OR IGNORE INTO jobs (id, layer, method, units, spec, status,"
                    " image_steps) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                    (
                        spec["id"],
                        spec["layer"],
                        spec["method"],
                        json.dumps(spec["units"]),
                        json.dumps(spec),
                        spec.get("image_steps"),
                    ),
                )
                self.db.execute("UPDATE jobs SET planned = ? WHERE id = ?", (now, spec["id"]))

    def network(self):
        """(model, weights, weights_seed) of the campaign's jobs, or None for an empty catalog."""
        row = self.db.execute("SELECT spec FROM jobs ORDER BY rowid LIMIT 1").fetchone()
        if row is None:
            return None
        spec = json.loads(row[0])
        return spec["model"], spec["weights"], spec["weights_seed"]

    def reset_interrupted(self):
        """Jobs a dead driver left 'running' go back to 'pending'; returns how many."""
        with self._tx():
            return self.db.execute(
                "UPDATE jobs SET status = 'pending', worker = NULL WHERE status = 'running'"
            ).rowcount

    def reset_missing(self, folder):
        """Done jobs with an artifact missing from ``folder`` go back to 'pending'; how many."""
        missing = []
        for job_id, artifacts in self.db.execute(
            "SELECT id, artifacts FROM jobs WHERE status = 'done'"
        ).fetchall():
            paths = json.loads(artifacts or "[]")
            if not paths or not all(os.path.isfile(os.path.join(folder, p)) for p in paths):
                missing.append(job_id)
        with self._tx():
            for job_id in missing:
                self.db.execute("UPDATE jobs SET status = 'pending' WHERE id = ?", (job_id,))
        return len(missing)

    def status(self, ids):
        rows = {}
        for chunk in _chunks(list(ids), 500):
            q = f"SELECT id, status FROM jobs WHERE id IN ({','.join('?' * len(chunk))})"
            rows.update(dict(self.db.execute(q, chunk).fetchall()))
        return rows

    def start(self, job_id):
        with self._tx():
            self.db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started = ?, worker ="
                " NULL, error = NULL WHERE id = ?",
                (time.time(), job_id),
            )

    def finish(self, job_id, result, artifacts, unit_rows):
        """Mark a job done with its results, atomically with its per-unit rows."""
        with self._tx():
            self.db.execute("DELETE FROM unit_results WHERE job_id = ?", (job_id,))
            self.db.executemany(
                "INSERT INTO unit_results VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        job_id,
                        r["layer"],
                        r["unit"],
                        r["method"],
                        json.dumps(r["metrics"]),
                        json.dumps(r["artifacts"]),
                    )
                    for r in unit_rows
                ],
            )
            self.db.execute(
                "UPDATE jobs SET status = 'done', finished = ?, seconds = ?, worker = ?, metrics ="
                " ?, artifacts = ? WHERE id = ?",
                (
                    time.time(),
                    result["seconds"],
                    result["worker"],
                    json.dumps(result["metrics"]),
                    json.dumps(artifacts),
                    job_id,
                ),
            )

    def fail(self, job_id, error):
        with self._tx():
            self.db.execute(
                "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE id = ?",
                (time.time(), error, job_id),
            )

    def jobs(self):
        cursor = self.db.execute(
            "SELECT id, layer, method, units, spec, status, attempts, image_steps, worker, started,"
            " finished, seconds, metrics, artifacts, error FROM jobs ORDER BY rowid"
        )
        keys = [d[0] for d in cursor.description]
        out = []
        for row in cursor.fetchall():
            job = dict(zip(keys, row))
            for k in ("units", "spec", "metrics", "artifacts"):
                job[k] = json.loads(job[k]) if job[k] is not None else None
            out.append(job)
        return out

    def unit_results(self):
        rows = self.db.execute(
            "SELECT u.layer, u.unit, u.method, u.metrics, u.artifacts, u.job_id FROM unit_results u"
            " JOIN jobs j ON j.id = u.job_id WHERE j.status = 'done'"
            f" ORDER BY {getattr(self, '_order', 'j.planned, ')}j.finished, j.rowid, u.unit"
        ).fetchall()
        return [
            {
                "layer": a,
                "unit": b,
                "method": c,
                "metrics": json.loads(d),
                "artifacts": json.loads(e),
                "job_id": f,
            }
            for a, b, c, d, e, f in rows
        ]

    def counts(self):
        return dict(self.db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())

    def runs(self):
        return [
            {"started": s, "argv": json.loads(a), "config": json.loads(c)}
            for s, a, c in self.db.execute("SELECT started, argv, config FROM runs ORDER BY rowid")
        ]


class _Transaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, tb):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


def _chunks(items, n):
    for i in range(0, len(items), n):
        yield items[i : i + n]
