"""JobSpec: what a background job runs (kind + parameters), where (workspace, backend) and with what seed.

A spec is plain JSON data, so it travels to a detached process, a Ray worker or the workspace store unchanged.
Its ``job_id`` is derived from its content and its creation time: the same spec object always names the same
job, and two specs made at different times name different jobs.

Examples:
    >>> spec = JobSpec("selftest", params={"steps": 3}, workspace="/tmp/ws", created_at="2025-01-31T12:00:00.000+00:00")
    >>> spec.job_id
    'job-20250131T120000-b6e4ca71'
    >>> JobSpec.from_json(spec.to_json()) == spec
    True
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Mapping

from ..artifacts import resolve_workspace, utc_now_iso
from ..errors import ScenarioValidationError

__all__ = ["JobSpec", "JOB_KINDS", "JOB_BACKENDS", "DIAGNOSTIC_KIND"]

JOB_KINDS: tuple[str, ...] = ("pretrain", "posttrain", "mine", "evaluate", "generate_variants")
"""The kinds of the post-training loop. Other names are accepted when a function is registered for them
(``worldengine_lab.jobs.register_kind``)."""

DIAGNOSTIC_KIND = "selftest"
"""A diagnostic kind that counts steps with checkpoints (used by tests and ``worldengine-lab jobs selftest``)."""

JOB_BACKENDS: tuple[str, ...] = ("local", "ray")
"""Where a job runs: a detached process on this machine, or a driver process connected to a Ray cluster."""

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:+=@,-]{0,127}$")
_RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")


def _json_copy(value: Any, where: str) -> Any:
    """A deep copy of ``value`` through JSON; raise if it is not JSON data (or holds NaN/inf)."""
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ScenarioValidationError(
            f"{where}: expected JSON data (dict/list/str/int/float/bool/None, finite numbers), could not encode "
            f"it ({exc}); pass paths as str and configs as dicts (dataclasses.asdict)") from exc
    return json.loads(text)


@dataclass(frozen=True)
class JobSpec:
    """One background job: a kind of work with its parameters, the workspace it reports to, and where it runs.

    Build one and hand it to ``worldengine_lab.jobs.launch(spec)``; the job's ``job_id`` is :attr:`job_id`.
    ``dataclasses.replace(spec, ..., created_at="")`` makes a new spec (and so a new job id) from an old one.
    """

    kind: str
    """What runs: ``"pretrain"``, ``"posttrain"``, ``"mine"``, ``"evaluate"``, ``"generate_variants"``, the
    diagnostic ``"selftest"``, or another name registered with ``worldengine_lab.jobs.register_kind``."""

    name: str = ""
    """A short label for lists and widgets (letters, digits, ``._:+=@,-``); default: the kind."""

    params: dict[str, Any] = field(default_factory=dict)
    """Kind-specific JSON parameters, e.g. ``{"split": "mine", "planner": "expert"}`` for ``mine`` or
    ``{"split": "pretrain", "config": {"epochs": 2}}`` for ``pretrain`` (``worldengine_lab.jobs.kinds`` lists
    each kind's keys). Copied at construction, so later edits of the caller's dict do not leak in."""

    workspace: str = ""
    """The workspace folder the job reports to (absolute path; default ``$WORLDENGINE_LAB_WORKSPACE``, else
    ``./workspace``, resolved when the spec is made)."""

    seed: int = 0
    """Seed of every random choice the job makes (passed to the kind's config as its seed)."""

    backend: str = "local"
    """``"local"``: a detached process on this machine. ``"ray"``: the same detached process, connected to a Ray
    cluster that runs the job's sharded work (needs ``pip install "ray[default]"``)."""

    resources: dict[str, float] = field(default_factory=lambda: {"num_cpus": 1.0})
    """What the job may use: ``num_cpus`` (CPU cores; torch threads locally, CPUs of a local Ray cluster),
    optionally ``num_gpus`` and ``memory`` (bytes) for Ray."""

    ray_address: str | None = None
    """Ray cluster to attach to (``"127.0.0.1:6379"``, ``"auto"``); None starts a private local cluster on
    127.0.0.1 for the job's lifetime. Only used when ``backend == "ray"``."""

    created_at: str = ""
    """When the spec was made, UTC ISO-8601 with milliseconds (set at construction when empty); part of the
    job id."""

    def __post_init__(self) -> None:
        if not self.created_at:
            object.__setattr__(self, "created_at", utc_now_iso())
        if not self.name and isinstance(self.kind, str):
            object.__setattr__(self, "name", self.kind)
        ws = self.workspace
        if isinstance(ws, (str, os.PathLike)):
            object.__setattr__(self, "workspace", str(resolve_workspace(ws or None)))
        object.__setattr__(self, "params", _json_copy(self.params, "JobSpec.params"))
        res = _json_copy(self.resources, "JobSpec.resources")
        if isinstance(res, dict):
            res = {k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                   for k, v in res.items()}
        object.__setattr__(self, "resources", res)
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ScenarioValidationError naming the field, the expectation and the value."""
        if not isinstance(self.kind, str) or not _KIND_RE.match(self.kind):
            raise ScenarioValidationError(
                f"JobSpec.kind: expected a lower-case name such as one of {list(JOB_KINDS)} or "
                f"{DIAGNOSTIC_KIND!r}, received {self.kind!r}")
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ScenarioValidationError(
                f"JobSpec.name: expected 1-128 characters of letters, digits and ._:+=@,- (not starting with one "
                f"of ._:+=@,-), received {self.name!r}")
        if not isinstance(self.params, dict):
            raise ScenarioValidationError(f"JobSpec.params: expected a dict, received {type(self.params).__name__}")
        if not isinstance(self.workspace, str) or not os.path.isabs(self.workspace):
            raise ScenarioValidationError(f"JobSpec.workspace: expected a folder path, received {self.workspace!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ScenarioValidationError(f"JobSpec.seed: expected an int, received {self.seed!r}")
        if self.backend not in JOB_BACKENDS:
            raise ScenarioValidationError(
                f"JobSpec.backend: expected one of {list(JOB_BACKENDS)}, received {self.backend!r}")
        self._validate_resources()
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address.strip()):
            raise ScenarioValidationError(
                f"JobSpec.ray_address: expected None (start a local cluster) or an address such as "
                f"'127.0.0.1:6379', received {self.ray_address!r}")
        try:
            datetime.fromisoformat(self.created_at)
        except (TypeError, ValueError) as exc:
            raise ScenarioValidationError(
                f"JobSpec.created_at: expected an ISO-8601 time, received {self.created_at!r}; leave it empty to "
                f"stamp the current time") from exc

    def _validate_resources(self) -> None:
        res = self.resources
        if not isinstance(res, dict) or "num_cpus" not in res:
            raise ScenarioValidationError(
                f"JobSpec.resources: expected a dict with 'num_cpus' (e.g. {{'num_cpus': 2}}), received {res!r}")
        for key, value in res.items():
            if key not in _RESOURCE_KEYS:
                raise ScenarioValidationError(
                    f"JobSpec.resources: expected keys among {list(_RESOURCE_KEYS)}, received {key!r}")
            if not isinstance(value, float) or not math.isfinite(value) or value < 0:
                raise ScenarioValidationError(
                    f"JobSpec.resources[{key!r}]: expected a finite number >= 0, received {value!r}")
        if res["num_cpus"] <= 0:
            raise ScenarioValidationError(
                f"JobSpec.resources['num_cpus']: expected > 0 CPU cores, received {res['num_cpus']}")

    # -- identity ---------------------------------------------------------------------------------------------
    def content_hash(self) -> str:
        """Hex sha256 of the canonical JSON of every field (``created_at`` included)."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @property
    def job_id(self) -> str:
        """``job-<UTC yyyymmddThhmmss of created_at>-<first 8 hex of content_hash()>``."""
        when = datetime.fromisoformat(self.created_at)
        when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
        return f"job-{when:%Y%m%dT%H%M%S}-{self.content_hash()[:8]}"

    @property
    def num_cpus(self) -> float:
        """``resources["num_cpus"]``, CPU cores."""
        return float(self.resources["num_cpus"])

    # -- JSON -------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal specs give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> "JobSpec":
        """The spec of :meth:`to_dict`; unknown keys raise ScenarioValidationError."""
        names = {f.name for f in fields(JobSpec)}
        extra = sorted(set(data) - names)
        if extra:
            raise ScenarioValidationError(
                f"JobSpec.from_dict: expected keys among {sorted(names)}, received unknown {extra}; was it written "
                f"by a newer worldengine_lab?")
        if "kind" not in data:
            raise ScenarioValidationError("JobSpec.from_dict: expected a 'kind' key, received none")
        return JobSpec(**dict(data))

    @staticmethod
    def from_json(text: str | bytes) -> "JobSpec":
        """The spec of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ScenarioValidationError(f"JobSpec.from_json: expected a JSON object, could not parse it ({exc})") \
                from exc
        if not isinstance(data, dict):
            raise ScenarioValidationError(f"JobSpec.from_json: expected a JSON object, received {type(data).__name__}")
        return JobSpec.from_dict(data)

    def __hash__(self) -> int:
        return hash(self.to_json())
