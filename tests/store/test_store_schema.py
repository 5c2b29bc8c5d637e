"""Workspace opening: pragmas, migrations, versions, bad files and workspace path resolution."""
from __future__ import annotations

import sqlite3

import pytest

from worldengine_lab.artifacts import WORKSPACE_ENV, resolve_workspace
from worldengine_lab.errors import WorkspaceError
from worldengine_lab.store import MIGRATIONS, SCHEMA_VERSION, Migration, Workspace
from worldengine_lab.store.schema import migrate, read_version, split_statements


def test_open_sets_wal_foreign_keys_busy_timeout_synchronous(ws):
    conn = ws.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_migrations_from_an_empty_dir(tmp_path):
    root = tmp_path / "fresh" / "ws"
    ws = Workspace.open(root)
    assert (root / "workspace.sqlite").is_file() and (root / "artifacts").is_dir()
    assert ws.schema_version == SCHEMA_VERSION
    applied = ws.migrations()
    assert applied["version"].tolist() == [m.version for m in MIGRATIONS]
    assert set(applied.columns) >= {"version", "applied_at", "description"}
    tables = set(ws.query("SELECT name FROM sqlite_master WHERE type = 'table'")["name"])
    assert {"scenarios", "scenario_tags", "imports", "splits", "schema_migrations"} <= tables
    index = ws.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'scenario_tags'")
    assert "scenario_tags_tag" in set(index["name"])


def test_reopening_is_idempotent(tmp_path, rows):
    ws = Workspace.open(tmp_path)
    ws.add_scenarios(rows[:2])
    ws.close()
    for _ in range(3):
        ws = Workspace.open(tmp_path, create=False)
        assert ws.schema_version == SCHEMA_VERSION
        assert len(ws.migrations()) == len(MIGRATIONS)
        assert ws.count() == 2
        ws.close()


def test_newer_user_version_raises(tmp_path):
    Workspace.open(tmp_path).close()
    with sqlite3.connect(tmp_path / "workspace.sqlite") as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(WorkspaceError, match=r"schema version .*upgrade worldengine_lab"):
        Workspace.open(tmp_path)


def test_missing_workspace_without_create_raises(tmp_path):
    with pytest.raises(WorkspaceError, match="No workspace"):
        Workspace.open(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()


def test_not_a_database_raises(tmp_path):
    (tmp_path / "workspace.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WorkspaceError, match="not a usable SQLite database|cannot open"):
        Workspace.open(tmp_path)


def test_workspace_path_that_is_a_file_raises(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WorkspaceError, match="expected a folder"):
        Workspace.open(tmp_path / "f")


def _raw(path):
    return sqlite3.connect(path, isolation_level=None)


def test_failing_migration_rolls_back_to_previous_version(tmp_path):
    conn = _raw(tmp_path / "db.sqlite")
    bad = MIGRATIONS + (Migration(SCHEMA_VERSION + 1, "broken", "CREATE TABLE half(x INTEGER); INSERT INTO nope VALUES (1);"),)
    with pytest.raises(WorkspaceError, match="migration .* failed"):
        migrate(conn, "test", bad)
    assert read_version(conn) == SCHEMA_VERSION
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "half" not in names and "scenarios" in names


def test_adding_a_migration_applies_only_the_new_step(tmp_path):
    conn = _raw(tmp_path / "db.sqlite")
    assert migrate(conn, "test") == [m.version for m in MIGRATIONS]
    later = MIGRATIONS + (Migration(SCHEMA_VERSION + 1, "metrics table", """
        CREATE TABLE metrics (scenario_id TEXT REFERENCES scenarios(scenario_id), name TEXT, value REAL);
        CREATE INDEX metrics_name ON metrics(name);  -- a comment; with a semicolon
    """),)
    assert migrate(conn, "test", later) == [SCHEMA_VERSION + 1]
    assert migrate(conn, "test", later) == []
    assert read_version(conn) == SCHEMA_VERSION + 1
    rows = conn.execute("SELECT version, description FROM schema_migrations ORDER BY version").fetchall()
    assert rows[-1] == (SCHEMA_VERSION + 1, "metrics table")


def test_migrations_must_be_numbered_in_order(tmp_path):
    conn = _raw(tmp_path / "db.sqlite")
    with pytest.raises(WorkspaceError, match="numbered"):
        migrate(conn, "test", (Migration(2, "skips one", "SELECT 1"),))


def test_split_statements_respects_strings_and_triggers():
    sql = """
    CREATE TABLE a (x TEXT DEFAULT ';');  -- comment
    CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 'y;'; END;
    """
    stmts = split_statements(sql)
    assert len(stmts) == 2 and "CREATE TRIGGER" in stmts[1] and stmts[1].endswith("END;")
    with pytest.raises(WorkspaceError, match="incomplete"):
        split_statements("INSERT INTO a VALUES ('unterminated")


def test_workspace_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_workspace() == tmp_path / "workspace"
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "from_env"))
    assert resolve_workspace() == tmp_path / "from_env"
    assert resolve_workspace(tmp_path / "explicit") == tmp_path / "explicit"
    ws = Workspace.open()
    assert ws.root == tmp_path / "from_env" and (tmp_path / "from_env" / "workspace.sqlite").exists()
    ws.close()
