"""Training killed with SIGKILL mid-run resumes from its last checkpoint; a damaged checkpoint is caught by its
content hash and the one before it is used.

``WORLDENGINE_LAB_TRAIN_KILLS`` sets the number of kills (default 10). Attempts are forked from a forkserver
that has already imported torch and the training code, so each restart costs milliseconds, not seconds.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import random
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from _fuzz import record
from _workers import KILL_CONFIG, train
from worldengine_lab.errors import CorruptFileError
from worldengine_lab.tensor_files import (
    digest_path,
    load_training_state,
    previous_path,
    save_training_state,
)

KILLS = int(os.environ.get("WORLDENGINE_LAB_TRAIN_KILLS", "10"))


def _epoch(run: Path) -> int:
    found = load_training_state(run / "last.pt")
    return 0 if found is None else int(found[0]["epoch"])


def _ctx() -> mp.context.BaseContext:
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torch._dynamo", "worldengine_lab.training.imitation", "_workers"])
    return ctx


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_mid_training_resumes_from_the_last_checkpoint(tmp_path: Path, record_property) -> None:
    run = tmp_path / "run"
    run.mkdir()
    ctx = _ctx()
    rng = random.Random(0)
    t_start = time.monotonic()
    kills = []
    for attempt in range(KILLS):
        before = _epoch(run)
        t_attempt = time.monotonic()
        p = ctx.Process(target=train, args=(str(run), attempt))
        p.start()
        deadline = time.monotonic() + 120
        while _epoch(run) <= before and p.is_alive() and time.monotonic() < deadline:  # one more epoch saved
            time.sleep(0.01)
        assert p.is_alive(), f"attempt {attempt} ended before it was killed (exit code {p.exitcode})"
        time.sleep(rng.uniform(0.0, 0.15))  # a random point: mid-step, mid-evaluation or mid-save
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        assert p.exitcode == -signal.SIGKILL
        after = _epoch(run)  # the checkpoint left by a SIGKILL loads (hash checked) ...
        assert after >= before + 1  # ... and keeps every finished epoch
        log = (run / f"attempt-{attempt}.log").read_text() if (run / f"attempt-{attempt}.log").exists() else ""
        resumed = re.findall(r"resuming .* at epoch (\d+)", log)
        assert resumed == ([] if before == 0 else [str(before)]), log  # started from the last checkpoint, not 0
        kills.append({"attempt": attempt, "resumed_at_epoch": before, "killed_at_epoch": after,
                      "seconds": round(time.monotonic() - t_attempt, 2)})
    assert _epoch(run) < KILL_CONFIG.epochs, "training finished before the last kill; raise KILL_CONFIG.epochs"

    # damage the newest checkpoint: the last attempt must notice (content hash) and go on from the one before
    last_epoch = _epoch(run)
    data = bytearray((run / "last.pt").read_bytes())
    data[len(data) // 3] ^= 0x10
    (run / "last.pt").write_bytes(bytes(data))
    p = ctx.Process(target=train, args=(str(run), KILLS))  # the last attempt runs to the end
    p.start()
    p.join(300)
    assert p.exitcode == 0 and (run / "model.pt").is_file()
    log = (run / f"attempt-{KILLS}.log").read_text()
    assert "content hash" in log and f"at epoch {last_epoch - 1}" in log, log
    seconds = time.monotonic() - t_start
    figures = {"kills": len(kills), "damaged_checkpoint_fallback_epoch": last_epoch - 1, "kills_survived": sum(k["killed_at_epoch"] > k["resumed_at_epoch"] for k in kills),
               "epochs_lost": 0, "final_epoch": _epoch(run), "seconds": round(seconds, 1), "attempts": kills}
    record("kill_training", figures)
    record_property("figures", figures)


def test_a_damaged_checkpoint_is_detected_by_hash_and_the_previous_one_used(tmp_path: Path, caplog) -> None:
    last = tmp_path / "last.pt"
    for epoch in (1, 2):
        save_training_state(last, {"epoch": epoch, "w": torch.full((4,), float(epoch))})
    assert previous_path(last).is_file() and digest_path(last).is_file()
    assert load_training_state(last)[0]["epoch"] == 2

    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit: still a loadable zip, but not the bytes that were saved
    last.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        state, used = load_training_state(last)
    assert state["epoch"] == 1 and used == previous_path(last)
    assert "content hash" in caplog.text and "previous checkpoint" in caplog.text

    previous_path(last).write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="no intact checkpoint"):
        load_training_state(last)


def test_a_checkpoint_without_a_sidecar_still_loads(tmp_path: Path) -> None:
    last = tmp_path / "last.pt"
    save_training_state(last, {"epoch": 3})
    digest_path(last).unlink()  # runs written before sidecars existed
    assert load_training_state(last)[0]["epoch"] == 3
    assert load_training_state(tmp_path / "none.pt") is None
