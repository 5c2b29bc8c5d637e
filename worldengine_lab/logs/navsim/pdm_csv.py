"""Per-token PDM score CSVs in the layout NAVSIM v1.1's ``run_pdm_score.py`` writes (World Engine uses it too).

Layout: pandas' ``to_csv`` of the score table *with its index*, so the header starts with an empty cell::

    ,token,valid,no_at_fault_collisions,drivable_area_compliance,driving_direction_compliance,ego_progress,time_to_collision_within_bound,comfort,score
    0,5798a6e25f2553e4,True,1.0,1.0,1.0,0.93,1.0,1.0,0.97
    1,3dc6b109b480502f,False,,,,,,,
    2,average,False,1.0,1.0,1.0,0.93,1.0,1.0,0.97

* one row per token; ``valid`` False marks a token whose evaluation raised (its metric cells are empty);
* the §2.13 columns (spec/metrics.md), each in [0, 1], in NAVSIM's ``PDMResults`` field order;
* a last row whose token is ``average``: the mean of each metric column over the rows above (NaN skipped, so over
  valid rows) and ``valid`` = all rows valid. It is a summary, not a scene, so :func:`read_pdm_csv` drops it (it
  can be recomputed exactly from the token rows); :func:`write_pdm_csv` appends it as NAVSIM does.

Further columns (World Engine's closed-loop extras, e.g. ``lane_keeping``) are read and kept after ``score``.

Examples:
    >>> import tempfile, pathlib, pandas as pd
    >>> t = pd.DataFrame({"token": ["a1"], "valid": [True], "no_at_fault_collisions": [1.0],
    ...     "drivable_area_compliance": [1.0], "driving_direction_compliance": [1.0], "ego_progress": [0.5],
    ...     "time_to_collision_within_bound": [1.0], "comfort": [1.0], "score": [0.7916666666666666]})
    >>> p = write_pdm_csv(pathlib.Path(tempfile.mkdtemp()) / "scores.csv", t)
    >>> p.read_text().splitlines()[-1].split(",")[:3]
    ['1', 'average', 'True']
    >>> read_pdm_csv(p).equals(t)
    True
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ...artifacts import atomic_write_text
from ...errors import CorruptFileError, DataFormatError, MissingColumnError, MissingFileError

__all__ = ["PDM_CSV_COLUMNS", "PDM_METRIC_COLUMNS", "AVERAGE_TOKEN", "read_pdm_csv", "write_pdm_csv"]

PDM_METRIC_COLUMNS: tuple[str, ...] = (
    "no_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance", "ego_progress",
    "time_to_collision_within_bound", "comfort", "score",
)
"""The metric columns in NAVSIM v1.1's ``PDMResults`` order (the CSV's column order)."""

PDM_CSV_COLUMNS: tuple[str, ...] = ("token", "valid") + PDM_METRIC_COLUMNS
"""Every column a PDM CSV must have, in file order (after the unnamed index column)."""

AVERAGE_TOKEN = "average"
"""Token of NAVSIM's summary row."""

_TRUE, _FALSE = frozenset({"true", "1", "1.0"}), frozenset({"false", "0", "0.0"})


def _parse_valid(values: pd.Series, path: Path) -> np.ndarray:
    low = values.str.strip().str.lower()
    ok = low.isin(_TRUE | _FALSE)
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise DataFormatError(f"read_pdm_csv({path}): column 'valid' row {i}: expected True or False, received "
                              f"{values.iloc[i]!r}")
    return low.isin(_TRUE).to_numpy()


def read_pdm_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a per-token PDM score CSV; drop NAVSIM's ``average`` row.

    Returns:
        ``token`` (str), ``valid`` (bool), :data:`PDM_METRIC_COLUMNS` (float64; NaN allowed only where ``valid`` is
        False), then any further columns (numeric where every value parses, else str); RangeIndex.
    Raises:
        MissingFileError: no file. CorruptFileError: not a CSV / empty. MissingColumnError: a column of
        :data:`PDM_CSV_COLUMNS` is absent. DataFormatError: unparsable ``valid`` or metric values, a valid row
        with a missing metric, a metric outside [0, 1], or a token repeated.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"read_pdm_csv: expected a PDM score CSV at {p}, found none; check the path")
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"read_pdm_csv({p}): expected a CSV with header {','.join(('',) + PDM_CSV_COLUMNS)}, "
                               f"could not parse it: {exc}") from exc
    index_cols = [c for c in raw.columns if c == "" or c.startswith("Unnamed: ")]
    raw = raw.drop(columns=index_cols)
    for col in PDM_CSV_COLUMNS:
        if col not in raw.columns:
            raise MissingColumnError(f"read_pdm_csv({p}): expected column {col!r} (NAVSIM PDM CSV columns "
                                     f"{list(PDM_CSV_COLUMNS)}), received {list(raw.columns)}")
    raw = raw[raw["token"] != AVERAGE_TOKEN].reset_index(drop=True)
    dup = raw["token"][raw["token"].duplicated()]
    if len(dup):
        raise DataFormatError(f"read_pdm_csv({p}): token {dup.iloc[0]!r} appears more than once; expected one row "
                              f"per token")
    out = pd.DataFrame({"token": raw["token"].astype(str), "valid": _parse_valid(raw["valid"], p)})
    for col in PDM_METRIC_COLUMNS:
        text = raw[col].str.strip()
        values = pd.to_numeric(text.where(text != "", None), errors="coerce").astype("float64")
        bad = values.isna() & (text != "") & ~text.str.lower().isin({"nan"})
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFormatError(f"read_pdm_csv({p}): column {col!r}, token {raw['token'].iloc[i]!r}: expected a "
                                  f"number, received {raw[col].iloc[i]!r}")
        missing = values.isna() & out["valid"]
        if missing.any():
            i = int(np.flatnonzero(missing.to_numpy())[0])
            raise DataFormatError(f"read_pdm_csv({p}): column {col!r}, token {raw['token'].iloc[i]!r}: valid row "
                                  f"without a value; mark the row valid=False or fill the value")
        outside = (values < 0.0) | (values > 1.0)
        if outside.any():
            i = int(np.flatnonzero(outside.to_numpy())[0])
            raise DataFormatError(f"read_pdm_csv({p}): column {col!r}, token {raw['token'].iloc[i]!r}: expected a "
                                  f"value in [0, 1], received {values.iloc[i]!r}")
        out[col] = values
    for col in (c for c in raw.columns if c not in PDM_CSV_COLUMNS):
        text = raw[col]
        nums = pd.to_numeric(text.where(text != "", None), errors="coerce")
        out[col] = nums.astype("float64") if (nums.notna() | (text == "")).all() else text
    return out


def write_pdm_csv(path: str | os.PathLike[str], table: pd.DataFrame, extra_columns: Sequence[str] = (),
                  average_row: bool = True) -> Path:
    """Atomically write ``table`` as a NAVSIM PDM CSV (index column, NAVSIM column order, ``average`` row).

    Args:
        path: the ``.csv`` file (parents created).
        table: one row per token: ``token`` (or ``scenario_id``), :data:`PDM_METRIC_COLUMNS` in [0, 1] (NaN only
            on invalid rows), optional ``valid`` (default True).
        extra_columns: further numeric columns to write after ``score`` (averaged like the metrics).
        average_row: append NAVSIM's summary row (means over valid rows; ``valid`` = all rows valid).
    Returns:
        The path written. Floats are written with full precision, so :func:`read_pdm_csv` gives back the same
        values.
    Raises:
        MissingColumnError / DataFormatError: as :func:`read_pdm_csv` would for the same content.
    """
    p = Path(path)
    t = table.reset_index(drop=True)
    if "token" not in t.columns and "scenario_id" in t.columns:
        t = t.rename(columns={"scenario_id": "token"})
    need = ("token",) + PDM_METRIC_COLUMNS + tuple(extra_columns)
    for col in need:
        if col not in t.columns:
            raise MissingColumnError(f"write_pdm_csv({p}): table lacks column {col!r}; expected {list(need)}")
    out = pd.DataFrame({"token": t["token"].astype(str),
                        "valid": t["valid"].astype(bool) if "valid" in t.columns else True})
    if (out["token"] == AVERAGE_TOKEN).any():
        raise DataFormatError(f"write_pdm_csv({p}): token {AVERAGE_TOKEN!r} is reserved for the summary row; "
                              f"drop that row (read_pdm_csv does) or rename the token")
    for col in PDM_METRIC_COLUMNS + tuple(extra_columns):
        values = pd.to_numeric(t[col], errors="coerce").astype("float64")
        if col in PDM_METRIC_COLUMNS:
            bad = ((values < 0) | (values > 1)) | (values.isna() & out["valid"])
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataFormatError(f"write_pdm_csv({p}): column {col!r}, token {out['token'].iloc[i]!r}: "
                                      f"expected a value in [0, 1] (NaN only where valid is False), received "
                                      f"{t[col].iloc[i]!r}")
        out[col] = values
    if average_row:
        means = out.loc[out["valid"], list(out.columns[2:])].mean(skipna=True)
        summary = pd.DataFrame([{"token": AVERAGE_TOKEN, "valid": bool(out["valid"].all()), **means.to_dict()}])
        out = pd.concat([out, summary], ignore_index=True) if len(out) else summary
    buf = io.StringIO()
    out.to_csv(buf, index=True, lineterminator="\n")
    return atomic_write_text(p, buf.getvalue())
