"""Variants in the workspace: one ``variants`` row per variant (its lineage) plus the edited scenario as an
artifact file ``artifacts/variants/<sha of the id>.npz`` referenced by path and sha256.

The table is schema migration 4 (:mod:`worldengine_lab.store.schema`); :func:`ensure_variants_table` also
creates it in a workspace opened by older code (the DDL uses ``IF NOT EXISTS``).

Saving is idempotent: a variant re-made from the same parent, ops and seed has the same id and is stored once.

Examples:
    >>> import tempfile
    >>> from worldengine_lab.store import Workspace
    >>> from worldengine_lab.testing import make_scenario
    >>> from worldengine_lab.variants import RemoveAgent, make_variant
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> v = make_variant(make_scenario(num_agents=2), [RemoveAgent(agent="veh1")], objective="no lead")
    >>> save_variant(ws, v) == save_variant(ws, v) == v.variant_id
    True
    >>> len(list_variants(ws)), load_variant(ws, v.variant_id).objective
    (1, 'no lead')
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import pandas as pd

from ..artifacts import code_version, current_user, sha256_file, utc_now_iso
from ..datatypes.variant import Variant
from ..errors import CorruptFileError, WorkspaceError
from ..store.schema import _V4_VARIANTS, Migration, split_statements
from ..store.workspace import Workspace
from .ops import op_from_dict
from .scenario_io import load_scenario_file, scenario_to_bytes

__all__ = ["VARIANTS_DDL", "VARIANTS_MIGRATION_VERSION", "variants_migration", "ensure_variants_table",
           "save_variant", "load_variant", "list_variants", "ARTIFACT_KIND"]

logger = logging.getLogger(__name__)

VARIANTS_MIGRATION_VERSION = 4
"""The schema version that adds the ``variants`` table."""

ARTIFACT_KIND = "variants"
"""Artifact folder of the variant scenario files."""

VARIANTS_DDL = _V4_VARIANTS
"""DDL of the ``variants`` table (migration 4 of :mod:`worldengine_lab.store.schema`)."""


def variants_migration(version: int = VARIANTS_MIGRATION_VERSION) -> Migration:
    """The schema migration that adds the ``variants`` table, to append to ``store.schema.MIGRATIONS``."""
    return Migration(version, "variants: lineage of edited scenarios (parent, ops, seed) + scenario artifact",
                     VARIANTS_DDL)


def ensure_variants_table(ws: Workspace) -> None:
    """Create the ``variants`` table if the workspace lacks it (a no-op once migration 4 has run)."""
    if len(ws.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'variants'")):
        return
    with ws.transaction() as conn:
        for stmt in split_statements(VARIANTS_DDL):
            conn.execute(stmt)
    logger.info("workspace %s: created the variants table", ws.root)


def _artifact_name(variant_id: str) -> str:
    return hashlib.sha256(variant_id.encode("utf-8")).hexdigest()[:24] + ".npz"


def save_variant(ws: Workspace, variant: Variant) -> str:
    """Store ``variant`` (row + scenario file) unless its id is already stored; return its id.

    A variant re-made from the same parent, ops and seed has the same id and is not stored again (the first
    save's objective and file are kept). The scenario file is written before the row, atomically, so a crash
    leaves at most an unreferenced file.
    """
    ensure_variants_table(ws)
    vid = variant.variant_id
    if len(ws.query("SELECT variant_id FROM variants WHERE variant_id = ?", (vid,))):
        logger.debug("workspace %s: variant %s is stored already", ws.root, vid)
        return vid
    name = _artifact_name(vid)
    path, digest = ws.put_artifact(ARTIFACT_KIND, name, scenario_to_bytes(variant.scenario))
    rel = path.relative_to(ws.root).as_posix()
    with ws.transaction() as conn:
        conn.execute(
            "INSERT INTO variants(variant_id, parent_id, ops_json, seed, objective, code_version, created_at, user, "
            "scenario_path, scenario_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(variant_id) DO NOTHING",
            (vid, variant.parent_id, variant.ops_json(), variant.seed, variant.objective, code_version(),
             utc_now_iso(), current_user(), rel, digest))
    logger.info("workspace %s: stored variant %s (%s)", ws.root, vid, rel)
    return vid


def load_variant(ws: Workspace, variant_id: str) -> Variant:
    """Read a stored variant: ops rebuilt from their records, scenario from its file (hash verified).

    Raises:
        WorkspaceError: the id is not stored. CorruptFileError: the file is missing, changed or unreadable.
    """
    ensure_variants_table(ws)
    rows = ws.query("SELECT parent_id, ops_json, seed, objective, scenario_path, scenario_sha256 FROM variants "
                    "WHERE variant_id = ?", (variant_id,))
    if not len(rows):
        raise WorkspaceError(f"Workspace {ws.root}: no variant {variant_id!r}; list them with list_variants(ws)")
    r = rows.iloc[0]
    parent_id, ops_json, objective, rel, digest = (str(r[k]) for k in ("parent_id", "ops_json", "objective",
                                                                       "scenario_path", "scenario_sha256"))
    seed = None if pd.isna(r["seed"]) else int(r["seed"])
    path = ws.root / rel
    if path.is_file() and sha256_file(path) != digest:
        raise CorruptFileError(f"variant {variant_id!r}: {path} changed since it was stored (sha256 mismatch); "
                               "re-create the variant with make_variant and save it again")
    scenario = load_scenario_file(path)
    ops = tuple(op_from_dict(r) for r in json.loads(ops_json))
    return Variant(parent_id=parent_id, ops=ops, scenario=scenario, objective=objective, seed=seed)


def list_variants(ws: Workspace, parent_id: str | None = None) -> pd.DataFrame:
    """The ``variants`` rows (oldest first), optionally of one parent; ``ops`` holds the parsed records."""
    ensure_variants_table(ws)
    sql = "SELECT * FROM variants" + (" WHERE parent_id = ?" if parent_id is not None else "") + \
        " ORDER BY created_at, variant_id"
    table = ws.query(sql, () if parent_id is None else (parent_id,))
    ops: list[Any] = [json.loads(j) for j in table["ops_json"]] if len(table) else []
    table["ops"] = ops
    return table
