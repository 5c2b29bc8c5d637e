"""The workspace store: a SQLite (WAL) catalog of scenarios, tags, splits and imports, plus artifact files.

Examples:
    >>> import tempfile
    >>> from worldengine_lab.store import Workspace
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> ws.stats()["num_scenarios"]
    0
"""
from ._retry import RetryPolicy, is_busy_error, retry_on_busy
from .catalog import CATALOG_COLUMNS, ImportMeta
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
]
