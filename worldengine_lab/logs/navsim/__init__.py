"""NAVSIM interop: scene-filter YAML token lists and per-token PDM score CSVs (NAVSIM v1.1 layouts).

Use it to hand mined rare-case token lists to NAVSIM (``write_scene_filter``) and to read NAVSIM / World Engine
score tables back (``read_pdm_csv``) or write ours in their layout (``write_pdm_csv``).
"""
from .pdm_csv import AVERAGE_TOKEN, PDM_CSV_COLUMNS, PDM_METRIC_COLUMNS, read_pdm_csv, write_pdm_csv
from .scene_filter import SCENE_FILTER_TARGET, SceneFilterSpec, read_scene_filter, write_scene_filter

__all__ = [
    "AVERAGE_TOKEN",
    "PDM_CSV_COLUMNS",
    "PDM_METRIC_COLUMNS",
    "SCENE_FILTER_TARGET",
    "SceneFilterSpec",
    "read_pdm_csv",
    "read_scene_filter",
    "write_pdm_csv",
    "write_scene_filter",
]
