"""Artifact files: name sanitising, atomic writes, content hashes; the helpers in worldengine_lab.artifacts."""
from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest

from worldengine_lab import __version__
from worldengine_lab import artifacts
from worldengine_lab.errors import WorkspaceError


@pytest.mark.parametrize("kind,name", [
    ("rollouts", ".."), ("rollouts", "../escape.bin"), ("rollouts", "a/b.bin"), ("rollouts", "a\\b.bin"),
    ("rollouts", "/etc/passwd"), ("rollouts", ""), ("rollouts", ".hidden"), ("rollouts", "a..b"),
    ("..", "x.bin"), ("/abs", "x.bin"), ("a/b", "x.bin"), ("rollouts", "x\x00.bin"), ("rollouts", "x" * 300),
])
def test_artifact_names_that_leave_the_folder_are_rejected(ws, kind, name):
    with pytest.raises(WorkspaceError, match="plain file name"):
        ws.artifact_path(kind, name)


def test_artifact_path_is_inside_artifacts(ws):
    p = ws.artifact_path("renders", "nuplan-abc~1f2e3d4c.png")
    assert p == ws.root / "artifacts" / "renders" / "nuplan-abc~1f2e3d4c.png"
    assert not p.exists()


def test_put_artifact_bytes_and_file(ws, tmp_path):
    data = os.urandom(3_000_000)
    path, digest = ws.put_artifact("rollouts", "r1.bin", data)
    assert path.read_bytes() == data and digest == hashlib.sha256(data).hexdigest()
    assert artifacts.sha256_file(path) == digest
    src = tmp_path / "ckpt.pt"
    src.write_bytes(b"weights" * 1000)
    path2, digest2 = ws.put_artifact("checkpoints", "c1.pt", src)
    assert path2.read_bytes() == src.read_bytes() and digest2 == artifacts.sha256_bytes(src.read_bytes())
    with pytest.raises(WorkspaceError, match="exists"):
        ws.put_artifact("rollouts", "r1.bin", b"other", overwrite=False)
    path3, _ = ws.put_artifact("rollouts", "r1.bin", b"new")
    assert path3.read_bytes() == b"new"
    assert sorted(p.name for p in (ws.artifacts_dir / "rollouts").iterdir()) == ["r1.bin"]  # no temp files left
    with pytest.raises(WorkspaceError, match="existing file"):
        ws.put_artifact("rollouts", "r2.bin", tmp_path / "missing.bin")


def test_put_artifact_is_atomic_when_the_write_fails(ws, monkeypatch):
    path, _ = ws.put_artifact("rollouts", "r.bin", b"old content")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        ws.put_artifact("rollouts", "r.bin", b"new content that never lands")
    monkeypatch.undo()
    assert path.read_bytes() == b"old content"
    assert [p.name for p in path.parent.iterdir()] == ["r.bin"]


def test_atomic_write_text_creates_parents(tmp_path):
    p = artifacts.atomic_write_text(tmp_path / "a" / "b" / "c.json", '{"x": 1}')
    assert p.read_text() == '{"x": 1}'


def test_provenance_helpers():
    v = artifacts.code_version()
    assert v == __version__ or v.startswith(__version__ + "+g")
    assert artifacts.current_user()
    stamp = dt.datetime.fromisoformat(artifacts.utc_now_iso())
    assert stamp.utcoffset() == dt.timedelta(0)
