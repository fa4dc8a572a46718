"""Creating a fresh sqlite MLflow store: MLflow's own path versus copying a migrated template.

Both candidates end with the same thing, a store MLflow opens with its default experiment:

- ``public``: ``SqlAlchemyStore(uri, root)`` on a missing file (MLflow runs its whole
  migration history, as ``MlflowClient(uri)`` does on first use);
- ``template``: :func:`sparseae.tracking.store.prepare_sqlite_store` (copy the cached,
  migrated empty store) then ``SqlAlchemyStore(uri, root)`` (schema check, default experiment).

Timed round-robin in one process; prints the minimum and median of each and their difference
and ratio (``public`` / ``template``). The template itself is built before timing.

    .venv/bin/python bench/sqlite_store.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _open(db: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{db}"
    store = SqlAlchemyStore(uri, (db.parent / "mlartifacts").as_uri())
    assert store.get_experiment("0").name == "Default"
    store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from sparseae.tracking.store import _store_template, prepare_sqlite_store

    _store_template()
    times: dict[str, list[float]] = {"public": [], "template": []}
    with tempfile.TemporaryDirectory(prefix="sparseae-bench-store-") as tmp:
        for k in range(args.rounds):
            for name in ("public", "template") if k % 2 == 0 else ("template", "public"):
                db = Path(tmp) / f"{name}-{k}" / "mlflow.db"
                db.parent.mkdir()
                start = time.perf_counter()
                if name == "template":
                    prepare_sqlite_store(db)
                _open(db)
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:9s} min {min(values):.3f} s  median {statistics.median(values):.3f} s")
    pub, tpl = times["public"], times["template"]
    print(
        f"public - template: min {min(pub) - min(tpl):.3f} s, median "
        f"{statistics.median(pub) - statistics.median(tpl):.3f} s; ratio public/template: min "
        f"{min(pub) / min(tpl):.1f}, median {statistics.median(pub) / statistics.median(tpl):.1f}"
    )


if __name__ == "__main__":
    main()
