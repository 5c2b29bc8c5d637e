"""The workspace store: a SQLite (WAL) catalog of scenarios, tags, splits and imports, curation (notes, saved
views, decisions), plus artifact files.

Examples:
    >>> import tempfile
    >>> from worldengine_lab.store import Workspace
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> ws.stats()["num_scenarios"]
    0
"""
from ._retry import RetryPolicy, is_busy_error, retry_on_busy
from .catalog import CATALOG_COLUMNS, ImportMeta
from .curation import (
    DECISIONS, VIEW_KINDS, CurationError, SavedView, ViewExistsError, ViewNotFoundError, add_note, add_tags, decisions,
    delete_note, delete_view, export_view_yaml, load_view, notes, record_decision, remove_tags, save_view,
    view_scenario_ids, views,
)
from .schema import MIGRATIONS, SCHEMA_VERSION, Migration
from .workspace import ARTIFACTS_DIRNAME, BUSY_TIMEOUT_S, DB_FILENAME, Workspace

__all__ = [
    "Workspace",
    "ImportMeta",
    "CATALOG_COLUMNS",
    "Migration",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DB_FILENAME",
    "ARTIFACTS_DIRNAME",
    "BUSY_TIMEOUT_S",
    "RetryPolicy",
    "is_busy_error",
    "retry_on_busy",
    "CurationError",
    "ViewExistsError",
    "ViewNotFoundError",
    "SavedView",
    "VIEW_KINDS",
    "DECISIONS",
    "add_tags",
    "remove_tags",
    "add_note",
    "notes",
    "delete_note",
    "save_view",
    "views",
    "load_view",
    "delete_view",
    "view_scenario_ids",
    "export_view_yaml",
    "record_decision",
    "decisions",
]
