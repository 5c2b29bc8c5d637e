"""Front-end sources of the widgets: each widget's ES module is the shared prelude (``_common.js``: DOM builder,
binary-trait bytes, map styles) followed by the widget's own file."""
from __future__ import annotations

from pathlib import Path

__all__ = ["esm"]

_HERE = Path(__file__).parent


def esm(name: str) -> str:
    """The ES module source of widget file ``name`` (e.g. ``"scenario_viewer.js"``) with the prelude."""
    return (_HERE / "_common.js").read_text(encoding="utf-8") + "\n" + (_HERE / name).read_text(encoding="utf-8")
