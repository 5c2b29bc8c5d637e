"""``synthesize``: write the embedded world as a nuPlan dataset (maps + logs + manifest), atomically.

Layout of ``out_dir``::

    maps/nuplan-maps-v1.0.json
    maps/<map_name>/<version>/map.gpkg                       one per map of schema.MAP_VERSIONS
    nuplan-v1.1/splits/<split>/<log_name>.db                 split in pretrain, mine, test_common, test_rare
    manifest.json                                            logs, their map, split, seed, generator version,
                                                             injected rare events per log, event tag names

Everything is generated into a hidden temporary folder inside ``out_dir`` and renamed into place at the end
(``manifest.json`` last), so a failed run leaves ``out_dir`` as it was. Each log depends only on
``(seed, index)``: the first k logs of a larger run equal a run with ``num_logs=k``.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..._version import __version__
from ...errors import WorldEngineLabError
from ..nuplan.schema import MAP_EPSG, MAP_VERSIONS
from .config import GENERATOR_VERSION, SynthConfig
from .db_writer import write_log
from .episode import LogSpec, MapAssets, make_log
from .events import RARE_EVENT_TAGS, InjectedEvent
from .layouts import MAP_ORIGINS, layout_for
from .maps import map_gpkg_path, write_map, write_maps_index
from .network_builder import build_network

__all__ = ["synthesize", "load_result", "SynthResult", "DEFAULT_NUM_LOGS", "DATA_DIR", "MAPS_DIR", "MANIFEST_NAME",
           "log_specs"]

log = logging.getLogger(__name__)

DEFAULT_NUM_LOGS = 48
DATA_DIR = "nuplan-v1.1"
MAPS_DIR = "maps"
MANIFEST_NAME = "manifest.json"
_OUTPUTS = (MAPS_DIR, DATA_DIR, MANIFEST_NAME)


@dataclass(frozen=True)
class SynthResult:
    """Where a synthetic dataset was written."""

    data_root: Path
    """Dataset root (``NUPLAN_DATA_ROOT``): holds ``nuplan-v1.1/splits/<split>/*.db``."""
    maps_root: Path
    """Map root (``NUPLAN_MAPS_ROOT``): holds ``nuplan-maps-v1.0.json`` and ``<map>/<version>/map.gpkg``."""
    db_paths: tuple[Path, ...]
    """Every log file, in index order."""
    manifest_path: Path
    """``manifest.json`` (the same content as ``manifest``)."""
    manifest: dict = field(compare=False, repr=False)
    """Seed, generator version, config, maps and one entry per log (name, map, split, path, statistics)."""

    @property
    def root(self) -> Path:
        """The output folder (same as ``data_root``)."""
        return self.data_root

    def logs_in(self, split: str) -> tuple[Path, ...]:
        """Log files of one split."""
        return tuple(self.data_root / e["path"] for e in self.manifest["logs"] if e["split"] == split)


def load_result(out_dir: Path | str) -> SynthResult:
    """The ``SynthResult`` of a dataset that ``synthesize`` already wrote to ``out_dir``."""
    out = Path(out_dir)
    path = out / MANIFEST_NAME
    if not path.is_file():
        raise WorldEngineLabError(f"load_result: expected {path} written by synthesize, found none; "
                                  f"run synthesize({str(out)!r}, ...) first")
    manifest = json.loads(path.read_text())
    return SynthResult(out, out / MAPS_DIR, tuple(out / e["path"] for e in manifest["logs"]), path, manifest)


def _last_change(seed: int) -> str:
    day = _dt.date(2021, 3, 1) + _dt.timedelta(days=seed % 28)
    return f"{day.isoformat()}T00:00:00.000Z"


def log_specs(seed: int, num_logs: int, cfg: SynthConfig) -> list[LogSpec]:
    """Names, maps, splits, vehicles and start times of the logs; each is drawn from ``(seed, index)``."""
    order = np.random.default_rng([seed, 0x3A95]).permutation(len(cfg.maps))
    names = [n for n, _ in cfg.split_fractions]
    bounds = np.cumsum([f for _, f in cfg.split_fractions])
    specs, used = [], set()
    epoch = _dt.datetime(2021, 5, 3, tzinfo=_dt.timezone.utc)
    for i in range(num_logs):
        rng = np.random.default_rng([seed, i, 0x106])
        map_name = cfg.maps[int(order[i % len(cfg.maps)])]
        split = names[min(int(np.searchsorted(bounds, rng.random(), side="right")), len(names) - 1)]
        start = epoch + _dt.timedelta(days=int(rng.integers(0, 150)), seconds=int(rng.integers(7 * 3600, 20 * 3600)))
        veh = int(rng.integers(10, 60))
        first = int(rng.integers(100, 80_000))
        while True:
            name = f"{start:%Y.%m.%d.%H.%M.%S}_veh-{veh:02d}_{first:05d}_{first + 500 + i % 97:05d}"
            if name not in used:
                break
            start += _dt.timedelta(seconds=1)
        used.add(name)
        start_us = int(start.timestamp()) * 1_000_000 + int(rng.integers(0, 1_000_000))
        specs.append(LogSpec(i, name, map_name, split, f"veh-{veh:02d}", start.date().isoformat(), start_us))
    return specs


def synthesize(out_dir: Path | str, seed: int = 0, num_logs: int = DEFAULT_NUM_LOGS,
               config: SynthConfig | None = None, overwrite: bool = False, progress: bool = False) -> SynthResult:
    """Generate ``num_logs`` synthetic nuPlan logs and all four maps into ``out_dir``.

    Raises ``WorldEngineLabError`` if ``out_dir`` already holds a dataset and ``overwrite`` is False.
    Same ``(seed, num_logs, config)`` -> byte-identical files.

    Examples:
        >>> import tempfile
        >>> from worldengine_lab.logs.synthetic import SynthConfig, synthesize
        >>> res = synthesize(tempfile.mkdtemp(), seed=1, num_logs=1,
        ...                  config=SynthConfig(log_duration_s=50.0, max_vehicles=8))  # doctest: +SKIP
    """
    cfg = (config or SynthConfig()).validate()
    if num_logs < 0:
        raise WorldEngineLabError(f"synthesize: num_logs must be >= 0, received {num_logs}")
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    existing = [name for name in _OUTPUTS if (out / name).exists()]
    if existing and not overwrite:
        raise WorldEngineLabError(
            f"synthesize: {out} already holds {', '.join(existing)}; pass overwrite=True or choose another folder")
    tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=out))
    t0 = time.perf_counter()
    try:
        manifest = _generate(tmp, seed, num_logs, cfg, progress)
        for name in _OUTPUTS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
            os.replace(tmp / name, out / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthesised %d logs into %s in %.1f s", num_logs, out, time.perf_counter() - t0)
    return SynthResult(out, out / MAPS_DIR, tuple(out / e["path"] for e in manifest["logs"]),
                       out / MANIFEST_NAME, manifest)


def _generate(root: Path, seed: int, num_logs: int, cfg: SynthConfig, progress: bool) -> dict:
    last_change = _last_change(seed)
    maps_root = root / MAPS_DIR
    maps_root.mkdir()
    assets: dict[str, MapAssets] = {}
    maps_entry = {}
    for name in MAP_VERSIONS:
        net = build_network(layout_for(name), name, MAP_EPSG[name], MAP_ORIGINS[name])
        path = map_gpkg_path(maps_root, name)
        write_map(net, path, last_change)
        assets[name] = MapAssets.build(net)
        maps_entry[name] = {"version": MAP_VERSIONS[name], "layout": net.layout, "epsg": net.epsg,
                            "path": path.relative_to(root).as_posix()}
    write_maps_index(maps_root, list(MAP_VERSIONS))

    from tqdm.auto import tqdm

    entries = []
    for spec in tqdm(log_specs(seed, num_logs, cfg), desc="synthetic logs", disable=not progress, file=sys.stderr):
        content, stats, events = make_log(spec, assets[spec.map_name], cfg, seed)
        path = root / DATA_DIR / "splits" / spec.split / f"{spec.log_name}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        tag_refs = write_log(path, content)
        entries.append({"index": spec.index, "log_id": spec.log_name, "log_name": spec.log_name,
                        "map_name": spec.map_name,
                        "split": spec.split, "seed": seed, "path": path.relative_to(root).as_posix(),
                        "duration_s": cfg.log_duration_s,
                        "rare_events": _event_entries(events, content.tag_frame, content.tag_type, tag_refs), **stats})
        log.debug("log %d/%d %s (%s, %s)", spec.index + 1, num_logs, spec.log_name, spec.map_name, spec.split)
    (root / DATA_DIR / "splits").mkdir(parents=True, exist_ok=True)
    manifest = {
        "generator": "worldengine_lab.logs.synthetic", "generator_version": GENERATOR_VERSION,
        "package_version": __version__, "seed": seed, "num_logs": num_logs, "config": cfg.to_dict(),
        "maps": maps_entry,
        "splits": {name: sum(e["split"] == name for e in entries) for name, _ in cfg.split_fractions},
        "event_tags": list(RARE_EVENT_TAGS),
        "logs": entries,
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _event_entries(events: list[InjectedEvent], tag_frame: np.ndarray, tag_type: tuple[str, ...],
                   tag_refs: list[tuple[bytes, bytes | None]]) -> list[dict]:
    """Manifest entries of a log's rare events: type, start time (s), begin frame, lidar_pc token and hazard
    track token (hex, from the event's first tag row) and parameters."""
    out = []
    for ev in events:
        row = next(i for i, (f, t) in enumerate(zip(tag_frame.tolist(), tag_type)) if f == ev.frame and t == ev.tag)
        pc, track = tag_refs[row]
        d = ev.to_dict(0.05)
        d["lidar_pc_token"] = pc.hex()
        d["track_token"] = track.hex() if track is not None else None
        out.append(d)
    return out
