"""Importer fuzzing: damage a copy of a real-format dataset one way, import it into a fresh workspace in a
worker process, and classify what happened.

A case is one ``Mutation`` (what to damage and how, drawn by hypothesis) applied to a fresh copy of a pristine
source folder. The import runs in a separate worker process with a per-case time limit, so a hang or a crash
in native code (sqlite, pyarrow, GEOS) is caught and reported instead of taking the test run down.

Outcomes:
    ``accepted``  the damage was harmless (e.g. a flipped bit in a free page) and the import succeeded;
    ``rejected``  a WorldEngineLabError subclass was raised, and the workspace holds nothing new;
    ``skipped``   the mutation could not be applied (e.g. dropping a column the copy no longer has);
    ``escaped``   any other exception reached the caller (a bug);
    ``leaked``    the import failed but wrote to the workspace (a bug);
    ``hang`` / ``crash``: the worker passed the time limit / died (bugs).
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[2]
AV2_DATA = (REPO / ".." / "shared" / "data" / "av2").resolve()
RESULTS = REPO / "test-artifacts" / "reliability"
CASE_TIMEOUT_S = float(os.environ.get("WORLDENGINE_LAB_FUZZ_CASE_TIMEOUT_S", "30"))

BAD_VALUES = ("null", "text", "blob", "nan", "inf", "-inf", "huge", "-huge", "zero", "negative", "bigint")


def fuzz_cases(default: int) -> int:
    """Cases per importer: ``$WORLDENGINE_LAB_FUZZ_CASES`` if set, else ``default``."""
    return int(os.environ.get("WORLDENGINE_LAB_FUZZ_CASES", default))


@dataclass(frozen=True)
class Mutation:
    """One way to damage one file of a dataset copy.

    Attributes:
        target: the file, relative to the dataset copy's root.
        op: ``truncate`` | ``bitflip`` | ``zero_block`` | ``garbage`` | ``empty`` (any file);
            ``drop_table`` | ``drop_column`` | ``set_values`` | ``delete_rows`` (SQLite);
            ``drop_column`` | ``set_values`` | ``cast_text`` | ``delete_rows`` | ``duplicate_rows`` (Arrow);
            ``json_delete`` | ``json_set`` (JSON).
        table, column: what a structured op acts on ('' when unused).
        value: the bad value kind of ``set_values`` / ``json_set`` (see ``BAD_VALUES``).
        fraction: share of the file (truncate), of the rows (set_values, delete_rows) affected.
        seed: draws positions (bit flips, rows, the JSON node).
    """

    target: str
    op: str
    table: str = ""
    column: str = ""
    value: str = ""
    fraction: float = 0.5
    seed: int = 0


class NotApplicable(Exception):
    """The mutation does not apply to this copy; the case is skipped."""


# ---------------------------------------------------------------------------------------------- file-level ops
def _mutate_bytes(path: Path, m: Mutation) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(m.seed)
    if m.op == "truncate":
        data = data[: int(len(data) * m.fraction)]
    elif m.op == "bitflip":
        if not data:
            raise NotApplicable("empty file")
        for _ in range(1 + int(m.fraction * 16)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif m.op == "zero_block":
        if not data:
            raise NotApplicable("empty file")
        start = rng.randrange(len(data))
        n = max(1, int(len(data) * m.fraction * 0.2))
        data[start : start + n] = bytes(min(n, len(data) - start))
    elif m.op == "garbage":
        data += bytes(rng.randrange(256) for _ in range(1 + int(m.fraction * 4096)))
    elif m.op == "empty":
        data = bytearray()
    else:
        raise NotApplicable(m.op)
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------------------------- SQLite ops
def _sql_value(kind: str, rng: random.Random) -> Any:
    return {
        "null": None, "text": "not-a-number", "blob": bytes(rng.randrange(256) for _ in range(5)),
        "nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "huge": 1e300, "-huge": -1e300,
        "zero": 0, "negative": -1, "bigint": 2**62,
    }[kind]


def _mutate_sqlite(path: Path, m: Mutation) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if m.table not in tables:
            raise NotApplicable(f"no table {m.table}")
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{m.table}")')]
        con.execute("PRAGMA foreign_keys = OFF")
        if m.op == "drop_table":
            con.execute(f'DROP TABLE "{m.table}"')
        elif m.op == "drop_column":
            if m.column not in cols or len(cols) < 2:
                raise NotApplicable(f"no column {m.table}.{m.column}")
            keep = ", ".join(f'"{c}"' for c in cols if c != m.column)
            con.execute("BEGIN")
            con.execute(f'CREATE TABLE "_fz_{m.table}" AS SELECT {keep} FROM "{m.table}"')
            con.execute(f'DROP TABLE "{m.table}"')
            con.execute(f'ALTER TABLE "_fz_{m.table}" RENAME TO "{m.table}"')
            con.execute("COMMIT")
        elif m.op == "set_values":
            if m.column not in cols:
                raise NotApplicable(f"no column {m.table}.{m.column}")
            rowids = [r[0] for r in con.execute(f'SELECT rowid FROM "{m.table}"')]
            if not rowids:
                raise NotApplicable("empty table")
            rng = random.Random(m.seed)
            pick = rng.sample(rowids, max(1, int(len(rowids) * m.fraction)))
            con.execute("BEGIN")
            for r in pick:
                try:
                    con.execute(f'UPDATE "{m.table}" SET "{m.column}" = ? WHERE rowid = ?', (_sql_value(m.value, rng), r))
                except sqlite3.IntegrityError:  # NOT NULL / UNIQUE: leave that row
                    pass
            con.execute("COMMIT")
        elif m.op == "delete_rows":
            rng = random.Random(m.seed)
            rowids = [r[0] for r in con.execute(f'SELECT rowid FROM "{m.table}"')]
            pick = rng.sample(rowids, int(len(rowids) * m.fraction))
            con.executemany(f'DELETE FROM "{m.table}" WHERE rowid = ?', [(r,) for r in pick])
        else:
            raise NotApplicable(m.op)
    except sqlite3.DatabaseError as exc:  # the structured edit itself failed (e.g. a view depends on the table)
        raise NotApplicable(f"sqlite: {exc}") from exc
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------- Arrow ops
def _arrow_bad(kind: str, n: int, rng: random.Random, typ: Any) -> Any:
    import pyarrow as pa

    if kind == "null":
        return pa.nulls(n, typ)
    if kind in ("text", "blob"):
        return pa.array(["x" * rng.randrange(1, 4)] * n)
    value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "huge": 1e300, "-huge": -1e300, "zero": 0.0,
             "negative": -1.0, "bigint": float(2**62)}[kind]
    if pa.types.is_integer(typ):
        iv = {"nan": 0, "inf": 2**63 - 1, "-inf": -(2**63), "huge": 2**63 - 1, "-huge": -(2**63), "zero": 0,
              "negative": -1, "bigint": 2**62}[kind]
        return pa.array([iv] * n, pa.int64())
    return pa.array([value] * n, pa.float64())


def _mutate_arrow(path: Path, m: Mutation) -> None:
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    is_parquet = path.suffix == ".parquet"
    table = pq.read_table(path) if is_parquet else feather.read_table(path)
    rng = random.Random(m.seed)
    n = table.num_rows
    if m.op == "drop_column":
        if m.column not in table.column_names:
            raise NotApplicable(f"no column {m.column}")
        table = table.drop([m.column])
    elif m.op in ("set_values", "cast_text"):
        if m.column not in table.column_names or n == 0:
            raise NotApplicable(f"no column {m.column}")
        i = table.column_names.index(m.column)
        col = table.column(i).combine_chunks()
        if m.op == "cast_text":
            new = pa.array([str(v) for v in col.to_pylist()], pa.string())
        else:
            rows = np.zeros(n, bool)
            rows[rng.sample(range(n), max(1, int(n * m.fraction)))] = True
            bad = _arrow_bad(m.value, n, rng, col.type)
            if bad.type != col.type:
                try:
                    col = col.cast(bad.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    col = pa.array([str(v) for v in col.to_pylist()], pa.string())
                    bad = bad.cast(pa.string()) if not pa.types.is_null(bad.type) else bad
            if pa.types.is_null(bad.type):
                bad = pa.nulls(n, col.type)
            import pyarrow.compute as pc

            new = pc.if_else(pa.array(rows), bad.cast(col.type), col)
        table = table.set_column(i, m.column, new)
    elif m.op == "delete_rows":
        keep = np.ones(n, bool)
        keep[rng.sample(range(n), int(n * m.fraction))] = False
        table = table.filter(pa.array(keep))
    elif m.op == "duplicate_rows":
        if n == 0:
            raise NotApplicable("empty table")
        idx = np.concatenate([np.arange(n), np.array(rng.sample(range(n), max(1, int(n * m.fraction * 0.1))))])
        table = table.take(pa.array(idx))
    else:
        raise NotApplicable(m.op)
    if is_parquet:
        pq.write_table(table, path)
    else:
        feather.write_feather(table, path)


# ---------------------------------------------------------------------------------------------- JSON ops
def _json_bad(kind: str) -> Any:
    return {"null": None, "text": "x", "blob": [1, "a", None], "nan": math.nan, "inf": math.inf, "-inf": -math.inf,
            "huge": 1e308, "-huge": -1e308, "zero": 0, "negative": -1, "bigint": 10**40}[kind]


def _mutate_json(path: Path, m: Mutation) -> None:
    doc = json.loads(path.read_text())
    rng = random.Random(m.seed)
    parent, key, node = None, None, doc
    depth = rng.randrange(1, 7)
    for _ in range(depth):
        if isinstance(node, dict) and node:
            k = rng.choice(list(node))
        elif isinstance(node, list) and node:
            k = rng.randrange(len(node))
        else:
            break
        parent, key, node = node, k, node[k]
    if parent is None:
        raise NotApplicable("empty document")
    if m.op == "json_delete":
        del parent[key]
    elif m.op == "json_set":
        parent[key] = _json_bad(m.value)
    else:
        raise NotApplicable(m.op)
    path.write_text(json.dumps(doc))  # NaN/Infinity are written as the non-standard tokens Python accepts


def apply_mutation(root: Path, m: Mutation) -> None:
    """Damage ``root / m.target`` in place; NotApplicable if the mutation does not fit the file."""
    path = root / m.target
    if not path.is_file():
        raise NotApplicable(f"no file {m.target}")
    if m.op in ("truncate", "bitflip", "zero_block", "garbage", "empty"):
        _mutate_bytes(path, m)
    elif path.suffix in (".db", ".gpkg"):
        _mutate_sqlite(path, m)
    elif path.suffix in (".feather", ".parquet"):
        _mutate_arrow(path, m)
    elif path.suffix == ".json":
        _mutate_json(path, m)
    else:
        raise NotApplicable(f"{m.op} on {path.suffix}")


# ---------------------------------------------------------------------------------------------- one case
def _workspace_state(ws: Any) -> tuple[int, int, list[str]]:
    n_sc = int(ws.query("SELECT COUNT(*) AS n FROM scenarios")["n"][0])
    n_imp = int(ws.query("SELECT COUNT(*) AS n FROM imports")["n"][0])
    files = sorted(str(p.relative_to(ws.artifacts_dir)) for p in ws.artifacts_dir.rglob("*")) \
        if ws.artifacts_dir.exists() else []
    return n_sc, n_imp, files


def _run_import(kind: str, data: Path, ws: Any, maps_root: Path | None) -> dict[str, Any]:
    from worldengine_lab.scenarios.imports import import_av2, import_nuplan

    if kind == "nuplan":
        return import_nuplan(ws, data, maps_root=maps_root, stride_s=4.0, progress=False)
    return import_av2(ws, data, stride_s=4.0, skip_incomplete=False, progress=False)


def run_case(kind: str, pristine: str, mutation: Mutation, work: str, maps_root: str | None) -> dict[str, Any]:
    """Copy ``pristine`` to ``work``, apply ``mutation``, import; classify (runs in the worker process).

    For ``kind == "nuplan"`` the mutation target decides what is copied: a ``.db`` is copied and imported
    against the pristine maps; a map file is copied (the maps tree) and the pristine log imported against it.
    """
    from worldengine_lab.errors import WorldEngineLabError
    from worldengine_lab.store import Workspace

    src, dst = Path(pristine), Path(work)
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    try:
        if kind == "nuplan":
            if mutation.target.endswith(".db"):
                data_root = dst / "logs"
                shutil.copytree(src / "logs", data_root)
                maps = Path(maps_root) if maps_root else src / "maps"
                apply_mutation(dst, mutation)
            else:
                data_root = src / "logs"
                maps = dst / "maps"
                shutil.copytree(src / "maps", maps)
                apply_mutation(dst, mutation)
        else:
            shutil.copytree(src, dst / "data")
            data_root, maps = dst / "data", None
            apply_mutation(dst / "data", mutation)
    except NotApplicable as exc:
        return {"outcome": "skipped", "detail": str(exc)}
    ws = Workspace.open(dst / "ws")
    before = _workspace_state(ws)
    t = time.perf_counter()
    try:
        summary = _run_import(kind, data_root, ws, maps)
        out = {"outcome": "accepted", "detail": f"{summary['num_scenarios']} scenarios"}
    except WorldEngineLabError as exc:
        after = _workspace_state(ws)
        out = {"outcome": "rejected" if after == before else "leaked", "error": type(exc).__name__,
               "detail": str(exc)[:500]}
    except BaseException as exc:  # noqa: BLE001 - anything else is the bug we look for
        frames = "".join(traceback.format_tb(exc.__traceback__)[-6:])
        out = {"outcome": "escaped", "error": type(exc).__name__, "detail": f"{frames}{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        ws.close()
    out["seconds"] = time.perf_counter() - t
    shutil.rmtree(dst, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------- the runner
class CaseRunner:
    """Runs cases in one forked worker process; restarts it after a hang or a crash."""

    def __init__(self, timeout_s: float = CASE_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.failures: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.seconds = 0.0
        self._pool: cf.ProcessPoolExecutor | None = None

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self._pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context(method))
        return self._pool

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list(getattr(pool, "_processes", {}).values()):  # the worker this runner started
            if proc.is_alive():
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def run(self, fn: Callable[..., dict[str, Any]], *args: Any, mutation: Mutation) -> dict[str, Any]:
        t = time.perf_counter()
        fut = self._executor().submit(fn, *args)
        try:
            out = fut.result(timeout=self.timeout_s)
        except cf.TimeoutError:
            self._kill()
            out = {"outcome": "hang", "detail": f"no answer within {self.timeout_s:.0f} s"}
        except cf.process.BrokenProcessPool as exc:
            self._kill()
            out = {"outcome": "crash", "detail": f"worker died: {exc}"}
        self.seconds += time.perf_counter() - t
        self.counts[out["outcome"]] = self.counts.get(out["outcome"], 0) + 1
        if out.get("error") and out["outcome"] == "rejected":
            self.errors[out["error"]] = self.errors.get(out["error"], 0) + 1
        out["mutation"] = asdict(mutation)
        self.log.append(out)
        if out["outcome"] in ("escaped", "leaked", "hang", "crash"):
            self.failures.append(out)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    @property
    def tried(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "skipped")

    def summary(self, name: str) -> dict[str, Any]:
        return {"importer": name, "cases_tried": self.tried, "cases_skipped": self.counts.get("skipped", 0),
                "outcomes": dict(sorted(self.counts.items())), "errors_raised": dict(sorted(self.errors.items())),
                "failures": len(self.failures), "seconds": round(self.seconds, 1)}


def record(name: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` to ``test-artifacts/reliability/<name>.json`` (read by the README's figures)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True))
    return path
