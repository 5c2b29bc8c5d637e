"""The single error root of worldengine_lab and its subclasses.

Every message says what was expected, what was received and what to do next.
"""
from __future__ import annotations

__all__ = [
    "WorldEngineLabError",
    "ScenarioValidationError",
    "ShapeError",
    "MissingDependencyError",
    "BackendUnavailableError",
    "DataFormatError",
    "CorruptFileError",
    "MissingTableError",
    "MissingColumnError",
    "MissingLayerError",
    "EmptyLogError",
    "InvalidPoseError",
    "NonMonotonicTimestampsError",
    "MissingFileError",
    "WindowOutOfRangeError",
    "WorkspaceError",
    "ScenarioNotFoundError",
    "InfeasibleEditError",
]


class WorldEngineLabError(Exception):
    """Root of every error raised on purpose by worldengine_lab."""


class ScenarioValidationError(WorldEngineLabError, ValueError):
    """A seam type was constructed with a field that breaks its contract."""


class ShapeError(ScenarioValidationError):
    """An array field has the wrong shape or dtype."""


class MissingDependencyError(WorldEngineLabError, ImportError):
    """An optional package is needed for this call and is not installed."""


class BackendUnavailableError(WorldEngineLabError, RuntimeError):
    """A compute backend (e.g. gsplat on CUDA) was requested and is not available here."""


class DataFormatError(WorldEngineLabError, ValueError):
    """A data file does not follow the format the reader expects."""


class CorruptFileError(DataFormatError):
    """The file is truncated, not of the claimed container type, or unreadable."""


class MissingTableError(DataFormatError):
    """A SQLite/GeoPackage file lacks a table the reader needs."""


class MissingColumnError(DataFormatError):
    """A table lacks a column the reader needs."""


class MissingLayerError(MissingTableError):
    """A GeoPackage map lacks a vector layer the reader needs."""


class EmptyLogError(DataFormatError):
    """A log holds no usable rows (no poses, no sweeps)."""


class InvalidPoseError(DataFormatError):
    """A pose holds NaN/inf or otherwise impossible values."""


class NonMonotonicTimestampsError(DataFormatError):
    """Timestamps that must increase do not."""


class MissingFileError(DataFormatError, FileNotFoundError):
    """A file the dataset layout requires is absent."""


class WindowOutOfRangeError(WorldEngineLabError, IndexError):
    """A requested scenario window extends past the start or end of its log."""


class WorkspaceError(WorldEngineLabError):
    """The workspace store cannot be opened, migrated or written."""


class ScenarioNotFoundError(WorkspaceError, KeyError):
    """A scenario id is not in the workspace catalog (or not in the set it was looked up in)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InfeasibleEditError(WorldEngineLabError, ValueError):
    """A scenario edit (a variant op) cannot be made kinematically feasible or does not fit the scenario.

    The message names the op, the parameter and the reason, and says what to change.
    """
