"""The analysis one job runs, and how its result is stored: standard library only.

:func:`make_dataset` draws a synthetic classification data set (``rows`` x ``features``, three classes
around random centres; the same seed gives the same data on any host). :func:`analyse` splits it 3:1,
fits a bagged nearest-centroid classifier (each round fits class centroids on a bootstrap sample of the
training rows; the rounds vote), and keeps adding rounds until ``target_runtime`` seconds have passed
(at least ``min_rounds``), so the job's length is set by real work. It reports the test accuracy, the
confusion counts and, per feature, mean, standard deviation, range and a Fisher score (between-class
over within-class variance). :func:`commit` appends a result to an SQLite database in one transaction;
a job already stored is left as it is, so a result reported twice is stored once.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

__all__ = ["CLASSES", "analyse", "commit", "make_dataset", "read_results"]

CLASSES: Final = 3
#: Rows and features one job may ask for (pure Python: about 100 bytes per value).
MAX_ROWS: Final = 1_000_000
MAX_FEATURES: Final = 256

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS job_summary (
    job_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    host_name TEXT NOT NULL,
    rows INTEGER NOT NULL,
    features INTEGER NOT NULL,
    rounds INTEGER NOT NULL,
    duration_seconds REAL NOT NULL,
    model_score REAL NOT NULL,
    cpu_core_ids TEXT NOT NULL,
    cpu_affinity_enforced INTEGER NOT NULL,
    committed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS feature_summary (
    job_id TEXT NOT NULL,
    feature TEXT NOT NULL,
    mean REAL NOT NULL,
    std REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    importance REAL NOT NULL,
    PRIMARY KEY (job_id, feature)
);
CREATE TABLE IF NOT EXISTS prediction_summary (
    job_id TEXT NOT NULL,
    target INTEGER NOT NULL,
    prediction INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (job_id, target, prediction)
);
"""


def make_dataset(seed: int, rows: int, features: int) -> tuple[list[list[float]], list[int]]:
    rows = max(100, min(MAX_ROWS, rows))
    features = max(4, min(MAX_FEATURES, features))
    rng = random.Random(seed)
    informative = max(2, features // 2)
    centres = [
        [rng.uniform(-2.0, 2.0) if f < informative else 0.0 for f in range(features)] for _ in range(CLASSES)
    ]
    xs: list[list[float]] = []
    ys: list[int] = []
    gauss = rng.gauss
    for index in range(rows):
        label = index % CLASSES
        centre = centres[label]
        xs.append([centre[f] + gauss(0.0, 1.0) for f in range(features)])
        ys.append(label)
    return xs, ys


def _centroids(xs: list[list[float]], ys: list[int], sample: list[int], features: int) -> list[list[float]]:
    sums = [[0.0] * features for _ in range(CLASSES)]
    counts = [0] * CLASSES
    for i in sample:
        row, total = xs[i], sums[ys[i]]
        counts[ys[i]] += 1
        for f in range(features):
            total[f] += row[f]
    return [[v / max(1, counts[c]) for v in sums[c]] for c in range(CLASSES)]


def _nearest(row: list[float], centroids: list[list[float]]) -> int:
    best, best_distance = 0, math.inf
    for c, centre in enumerate(centroids):
        distance = sum((a - b) * (a - b) for a, b in zip(row, centre, strict=True))
        if distance < best_distance:
            best, best_distance = c, distance
    return best


def analyse(
    xs: list[list[float]], ys: list[int], *, seed: int, target_runtime: float, min_rounds: int = 1
) -> dict[str, Any]:
    """Fit and score the bagged classifier; runs at least ``target_runtime`` seconds of rounds."""
    started = time.perf_counter()
    rng = random.Random(seed + 1)
    order = list(range(len(xs)))
    rng.shuffle(order)
    cut = len(order) * 3 // 4
    train, test = order[:cut], order[cut:]
    features = len(xs[0])
    votes = [[0] * CLASSES for _ in test]
    rounds = 0
    deadline = started + max(0.0, target_runtime)
    while rounds < max(1, min_rounds) or time.perf_counter() < deadline:
        sample = [train[rng.randrange(len(train))] for _ in train]
        centroids = _centroids(xs, ys, sample, features)
        for k, i in enumerate(test):
            votes[k][_nearest(xs[i], centroids)] += 1
        rounds += 1
    predicted = [max(range(CLASSES), key=lambda c, v=v: v[c]) for v in votes]  # type: ignore[misc]
    correct = sum(1 for k, i in enumerate(test) if predicted[k] == ys[i])
    confusion: dict[tuple[int, int], int] = {}
    for k, i in enumerate(test):
        confusion[(ys[i], predicted[k])] = confusion.get((ys[i], predicted[k]), 0) + 1
    return {
        "rounds": rounds,
        "model_score": correct / max(1, len(test)),
        "duration_seconds": time.perf_counter() - started,
        "features": _feature_summary(xs, ys, features),
        "predictions": [[t, p, n] for (t, p), n in sorted(confusion.items())],
    }


def _feature_summary(xs: list[list[float]], ys: list[int], features: int) -> list[list[Any]]:
    out: list[list[Any]] = []
    n = len(xs)
    for f in range(features):
        column = [row[f] for row in xs]
        mean = sum(column) / n
        variance = sum((v - mean) ** 2 for v in column) / max(1, n - 1)
        by_class = [[column[i] for i in range(n) if ys[i] == c] for c in range(CLASSES)]
        means = [sum(vals) / max(1, len(vals)) for vals in by_class]
        between = sum(len(vals) * (m - mean) ** 2 for vals, m in zip(by_class, means, strict=True)) / n
        within = sum(sum((v - m) ** 2 for v in vals) for vals, m in zip(by_class, means, strict=True)) / n
        out.append(
            [
                f"feature_{f:03d}",
                mean,
                math.sqrt(variance),
                min(column),
                max(column),
                between / within if within else 0.0,
            ]
        )
    return out


def commit(
    db_path: str | Path, campaign_id: str, job_id: str, result: dict[str, Any], *, lock_timeout: float
) -> bool:
    """Store one job's result (False: it was stored before). Waits at most ``lock_timeout`` seconds for
    another writer."""
    path = Path(db_path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=max(0.1, lock_timeout), isolation_level=None)
    try:
        connection.executescript(_SCHEMA)
        connection.execute("BEGIN IMMEDIATE")
        try:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO job_summary VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    campaign_id,
                    str(result.get("host_name", "")),
                    int(result.get("rows", 0)),
                    int(result.get("feature_count", 0)),
                    int(result.get("rounds", 0)),
                    float(result.get("duration_seconds", 0.0)),
                    float(result.get("model_score", 0.0)),
                    ",".join(str(i) for i in result.get("cpu_core_ids", [])),
                    int(bool(result.get("cpu_affinity_enforced"))),
                    time.time(),
                ),
            )
            new = cursor.rowcount == 1
            if new:
                connection.executemany(
                    "INSERT INTO feature_summary VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(job_id, *row) for row in result.get("features", [])],
                )
                connection.executemany(
                    "INSERT INTO prediction_summary VALUES (?, ?, ?, ?)",
                    [(job_id, *row) for row in result.get("predictions", [])],
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return new
    finally:
        connection.close()


def read_results(db_path: str | Path, campaign_id: str) -> list[dict[str, Any]]:
    """The stored job summaries of one campaign, in job order."""
    connection = sqlite3.connect(Path(db_path).expanduser(), timeout=5.0)
    try:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT * FROM job_summary WHERE campaign_id = ? ORDER BY job_id", (campaign_id,)
        ).fetchall()
        return [dict(row) for row in rows]
    finally:
        connection.close()
