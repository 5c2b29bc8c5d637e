"""NAVSIM scene-filter YAML files: the token lists (splits, mined rare-case sets) NAVSIM's Hydra configs load.

A NAVSIM (v1.1) scene filter is a Hydra config instantiated into ``navsim.common.dataclasses.SceneFilter``; it
lives under ``navsim/planning/script/config/common/train_test_split/scene_filter/<name>.yaml`` and its file stem
is the name Hydra selects it by. Layout written here (NAVSIM's own files look the same)::

    # NAVSIM scene filter written by worldengine_lab (comment lines are ignored by Hydra and NAVSIM)
    # name: navtrain_collision
    _target_: navsim.common.dataclasses.SceneFilter
    _convert_: 'all'
    num_history_frames: 4       # frames up to and including "now" (2 Hz)
    num_future_frames: 10       # frames after "now"
    frame_interval: 1           # stride between scene starts, in frames (null: no overlap)
    has_route: true
    max_scenes: null
    log_names:                  # null: every log
      - '2021.06.03.12.02.06_veh-35_01100_01227'
    tokens:                     # null: every token
      - '5798a6e25f2553e4'

Tokens and log names are always single-quoted, so a token such as ``'12345678e1234567'`` is never read back as a
number (OmegaConf resolves more float forms than PyYAML). Keys this module does not know (newer NAVSIM fields)
are kept in :attr:`SceneFilterSpec.extra` and written back. The ``name`` comment is this module's; without it the
name is the file stem.

Examples:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "navtrain_collision.yaml"
    >>> _ = write_scene_filter(p, ["5798a6e25f2553e4"], log_names=["log_a"])
    >>> read_scene_filter(p).tokens
    ('5798a6e25f2553e4',)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ...artifacts import atomic_write_text
from ...errors import CorruptFileError, DataFormatError, MissingFileError

__all__ = ["SCENE_FILTER_TARGET", "SceneFilterSpec", "write_scene_filter", "read_scene_filter"]

SCENE_FILTER_TARGET = "navsim.common.dataclasses.SceneFilter"
"""The ``_target_`` class Hydra instantiates."""

_KNOWN = ("num_history_frames", "num_future_frames", "frame_interval", "has_route", "max_scenes", "log_names",
          "tokens")
_HEADER = "# NAVSIM scene filter written by worldengine_lab (comment lines are ignored by Hydra and NAVSIM)\n"
_NAME_RE = re.compile(r"^#\s*name:\s*(.*?)\s*$")


@dataclass(frozen=True)
class SceneFilterSpec:
    """The content of one NAVSIM scene-filter YAML.

    Attributes:
        name: the filter's name (``# name:`` comment, else the file stem).
        tokens: scene tokens (str) to keep, in file order; None keeps every token.
        log_names: logs to read, in file order; None reads every log.
        num_history_frames: frames up to and including "now" (>= 1; NAVSIM frames are 0.5 s apart).
        num_future_frames: frames after "now" (>= 0).
        frame_interval: stride between consecutive scene starts, in frames (>= 1), or None.
        has_route: keep only scenes with a route.
        max_scenes: keep at most this many scenes (>= 1), or None.
        extra: other top-level keys (besides ``_target_`` / ``_convert_``), written back unchanged.
    """

    name: str
    tokens: tuple[str, ...] | None
    log_names: tuple[str, ...] | None = None
    num_history_frames: int = 4
    num_future_frames: int = 10
    frame_interval: int | None = 1
    has_route: bool = True
    max_scenes: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def validate(self, where: str = "SceneFilterSpec") -> "SceneFilterSpec":
        """Check every field; raise DataFormatError naming ``where`` and the field. Returns self."""
        if not isinstance(self.name, str) or not self.name or "\n" in self.name:
            raise DataFormatError(f"{where}: name: expected a non-empty one-line str, received {self.name!r}")
        for key in ("tokens", "log_names"):
            _check_str_list(getattr(self, key), f"{where}: {key}")
        _check_int(self.num_history_frames, f"{where}: num_history_frames", 1, optional=False)
        _check_int(self.num_future_frames, f"{where}: num_future_frames", 0, optional=False)
        _check_int(self.frame_interval, f"{where}: frame_interval", 1, optional=True)
        _check_int(self.max_scenes, f"{where}: max_scenes", 1, optional=True)
        if not isinstance(self.has_route, bool):
            raise DataFormatError(f"{where}: has_route: expected true or false, received {self.has_route!r}")
        clash = sorted(set(self.extra) & (set(_KNOWN) | {"_target_", "_convert_"}))
        if clash:
            raise DataFormatError(f"{where}: extra: keys {clash} are SceneFilter fields; set them as fields")
        return self

    def to_yaml_dict(self) -> dict[str, Any]:
        """The mapping written to YAML (NAVSIM key order; str lists as quoted scalars)."""
        quoted = lambda xs: None if xs is None else [_Quoted(x) for x in xs]  # noqa: E731
        return {"_target_": SCENE_FILTER_TARGET, "_convert_": _Quoted("all"),
                "num_history_frames": self.num_history_frames, "num_future_frames": self.num_future_frames,
                "frame_interval": self.frame_interval, "has_route": self.has_route, "max_scenes": self.max_scenes,
                "log_names": quoted(self.log_names), "tokens": quoted(self.tokens), **dict(self.extra)}


def _check_int(value: Any, where: str, low: int, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise DataFormatError(f"{where}: expected an integer >= {low}{' or null' if optional else ''}, received "
                              f"{value!r}")


def _check_str_list(values: Any, where: str) -> None:
    if values is None:
        return
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise DataFormatError(f"{where}: expected a list of str or null, received {type(values).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v or "\n" in v:
            raise DataFormatError(f"{where}[{i}]: expected a non-empty one-line str, received {v!r} "
                                  f"({type(v).__name__}); quote tokens and log names in the YAML")


def _as_tuple(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """A sequence as a tuple; None and a bare str pass through (``validate`` rejects the str)."""
    return values if values is None or isinstance(values, str) else tuple(values)  # type: ignore[return-value]


class _Quoted(str):
    """A str dumped single-quoted."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes :class:`_Quoted` strings single-quoted and indents list items under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_Dumper.add_representer(_Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style="'"))


def write_scene_filter(path: str | os.PathLike[str], tokens: Sequence[str] | None,
                       log_names: Sequence[str] | None = None, name: str | None = None,
                       num_history_frames: int = 4, num_future_frames: int = 10, frame_interval: int | None = 1,
                       has_route: bool = True, max_scenes: int | None = None,
                       extra: Mapping[str, Any] | None = None) -> SceneFilterSpec:
    """Atomically write a NAVSIM scene-filter YAML; return what was written.

    Args:
        path: the ``.yaml`` file (parents created). Put it in NAVSIM's ``scene_filter/`` config folder and select
            it with ``train_test_split/scene_filter=<file stem>``.
        tokens: scene tokens, in order (None: every token).
        log_names: logs that hold them (None: every log; listing them makes NAVSIM read far less).
        name: recorded in a comment (default: the file stem).
        num_history_frames, num_future_frames, frame_interval, has_route, max_scenes: NAVSIM's SceneFilter fields.
        extra: further top-level keys (newer NAVSIM SceneFilter fields), written after ``tokens``.
    Raises:
        DataFormatError: a field is invalid (the file is not touched).
    """
    p = Path(path)
    spec = SceneFilterSpec(
        name=p.stem if name is None else name,
        tokens=_as_tuple(tokens), log_names=_as_tuple(log_names),
        num_history_frames=num_history_frames, num_future_frames=num_future_frames, frame_interval=frame_interval,
        has_route=has_route, max_scenes=max_scenes, extra=dict(extra or {}),
    ).validate(f"write_scene_filter({p})")
    body = yaml.dump(spec.to_yaml_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=4096)
    atomic_write_text(p, f"{_HEADER}# name: {spec.name}\n{body}")
    return spec


def read_scene_filter(path: str | os.PathLike[str]) -> SceneFilterSpec:
    """Read a NAVSIM scene-filter YAML (ours or NAVSIM's own).

    Missing SceneFilter fields take NAVSIM's defaults (frame_interval None, as in NAVSIM's dataclass).

    Raises:
        MissingFileError: no such file. CorruptFileError: not YAML, or not a mapping.
        DataFormatError: ``_target_`` is another class, or a field has the wrong type.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"read_scene_filter: expected a scene-filter YAML at {p}, found none; check the path")
    text = p.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CorruptFileError(f"read_scene_filter({p}): expected YAML, the parser says: {exc}") from exc
    if not isinstance(data, dict):
        raise CorruptFileError(f"read_scene_filter({p}): expected a mapping of SceneFilter fields, received "
                               f"{type(data).__name__}")
    target = data.pop("_target_", SCENE_FILTER_TARGET)
    data.pop("_convert_", None)
    if target != SCENE_FILTER_TARGET:
        raise DataFormatError(f"read_scene_filter({p}): expected _target_ {SCENE_FILTER_TARGET!r}, received "
                              f"{target!r}; this is not a NAVSIM scene filter")
    name = p.stem
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        m = _NAME_RE.match(line)
        if m:
            name = m.group(1)
    where = f"read_scene_filter({p})"
    for key in ("tokens", "log_names"):
        _check_str_list(data.get(key), f"{where}: {key}")
    spec = SceneFilterSpec(
        name=name,
        tokens=None if data.get("tokens") is None else tuple(data["tokens"]),
        log_names=None if data.get("log_names") is None else tuple(data["log_names"]),
        num_history_frames=data.get("num_history_frames", 4), num_future_frames=data.get("num_future_frames", 10),
        frame_interval=data.get("frame_interval"), has_route=data.get("has_route", True),
        max_scenes=data.get("max_scenes"), extra={k: v for k, v in data.items() if k not in _KNOWN},
    )
    return spec.validate(where)
