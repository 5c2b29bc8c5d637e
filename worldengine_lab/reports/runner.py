"""Run a parameterised report notebook with papermill and export it as standalone HTML, with its provenance.

A report template is a notebook with one cell tagged ``parameters``. :func:`run` checks the given parameters
against that cell (an unknown name is an error, not papermill's warning), executes the notebook in a fresh kernel
with plotly's offline renderer (figures embed plotly.js, so the HTML renders without network), and records inside
the report: the parameters, the workspace, the run ids the notebook declared with :func:`record_provenance`, seeds,
code version and time — as the first cell of the executed notebook and in its metadata (``worldengine_lab``).
Outputs are written atomically: a failed run leaves no half-written report.

Templates live in ``notebooks/reports`` of the source tree; ``WORLDENGINE_LAB_REPORTS`` or ``templates_dir`` point
elsewhere, and a path to any ``.ipynb`` works as ``name``.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..artifacts import atomic_write_text, code_version, current_user, sha256_file, utc_now_iso
from ..errors import DataFormatError, MissingDependencyError, MissingFileError, WorldEngineLabError

__all__ = ["ReportError", "ReportResult", "PROVENANCE_MIME", "templates_root", "list_reports", "template_path",
           "inspect", "run", "record_provenance"]

logger = logging.getLogger(__name__)

PROVENANCE_MIME = "application/vnd.worldengine-lab.provenance+json"
"""Output MIME type of :func:`record_provenance`; the runner collects these into the report's provenance."""

_PLOTLY_RENDERER = "plotly_mimetype+notebook"  # mimetype for JupyterLab, embedded plotly.js for offline HTML


class ReportError(WorldEngineLabError, ValueError):
    """A report could not be run: unknown template or parameter, or the notebook raised."""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`run` wrote.

    Attributes:
        html: the standalone HTML report; notebook: the executed notebook next to it.
        provenance: parameters, workspace, run ids, seeds, code version, template hash, times.
    """

    html: Path
    notebook: Path
    provenance: dict[str, Any] = field(default_factory=dict)


def templates_root(templates_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of report templates (argument, else ``$WORLDENGINE_LAB_REPORTS``, else the source tree's)."""
    if templates_dir is not None:
        return Path(templates_dir)
    env = os.environ.get("WORLDENGINE_LAB_REPORTS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "notebooks" / "reports"


def list_reports(templates_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the report templates (file stems), sorted."""
    root = templates_root(templates_dir)
    return sorted(p.stem for p in root.glob("*.ipynb")) if root.is_dir() else []


def template_path(name: str | os.PathLike[str], templates_dir: str | os.PathLike[str] | None = None) -> Path:
    """Resolve a report name (or a path to a notebook) to its template file."""
    p = Path(name)
    if p.suffix == ".ipynb":
        if not p.is_file():
            raise MissingFileError(f"report template {p}: no such notebook; check the path")
        return p
    candidate = templates_root(templates_dir) / f"{name}.ipynb"
    if not candidate.is_file():
        known = list_reports(templates_dir)
        raise ReportError(f"report {name!r}: no template {candidate}; known reports: {known or 'none'} "
                          "(worldengine-lab report --list)")
    return candidate


def _papermill() -> Any:
    try:
        import papermill
    except ImportError as exc:  # pragma: no cover - papermill is in the notebook extra
        raise MissingDependencyError("reports need papermill and nbconvert: pip install -e '.[notebook]'") from exc
    return papermill


def inspect(name: str | os.PathLike[str], templates_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The template's parameters: name -> {"default": source text, "type": inferred type name, "help": ...}."""
    pm = _papermill()
    path = template_path(name, templates_dir)
    raw = pm.inspect_notebook(str(path))
    if not raw:
        raise ReportError(f"report template {path}: no cell tagged 'parameters'; tag the cell that sets the defaults")
    return {k: {"default": v.get("default"), "type": v.get("inferred_type_name"), "help": v.get("help", "")}
            for k, v in raw.items()}


def record_provenance(**items: Any) -> None:
    """Declare, from inside a report notebook, what the report used (``run_ids=[...]``, ``planners={...}``,
    ``scenario_ids=...``); the runner collects every call into the report's provenance.

    Values must be JSON-serialisable. Outside a notebook this only logs.
    """
    payload = json.loads(json.dumps(items, default=str))
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with the notebook extra
        logger.info("provenance: %s", payload)
        return
    display({PROVENANCE_MIME: payload, "text/plain": f"provenance: {', '.join(sorted(payload))}"}, raw=True)


def _collect(nb: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for cell in nb.cells:  # a report has tens of cells
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PROVENANCE_MIME in data:
                for k, v in dict(data[PROVENANCE_MIME]).items():
                    if isinstance(v, list) and isinstance(found.get(k), list):
                        found[k] = found[k] + [x for x in v if x not in found[k]]
                    else:
                        found[k] = v
    return found


def _provenance_cell(prov: Mapping[str, Any]) -> Any:
    import nbformat

    rows = "\n".join(f"| {k} | `{json.dumps(v, default=str)[:300]}` |" for k, v in prov.items())
    return nbformat.v4.new_markdown_cell(f"**Report provenance**\n\n| field | value |\n|---|---|\n{rows}\n")


def run(name: str | os.PathLike[str], parameters: Mapping[str, Any] | None = None,
        out: str | os.PathLike[str] = "report.html", *, workspace: str | os.PathLike[str] | None = None,
        templates_dir: str | os.PathLike[str] | None = None, kernel_name: str = "python3",
        timeout_s: float | None = None) -> ReportResult:
    """Execute report ``name`` with ``parameters`` and write ``out`` (HTML) plus the executed ``.ipynb`` beside it.

    Args:
        name: a template name (:func:`list_reports`) or a path to a notebook.
        parameters: values for names in the template's ``parameters`` cell; unknown names raise ReportError.
        out: the HTML file to write (its folder is created).
        workspace: passed as the ``workspace`` parameter when the template has one (and recorded).
        kernel_name: the Jupyter kernel to run in; timeout_s: per-cell limit (None: no limit).
    Raises:
        ReportError: unknown template or parameter, or a cell raised (the message names the cell and error).
    """
    pm = _papermill()
    path = template_path(name, templates_dir)
    params = dict(parameters or {})
    known = inspect(path)
    if workspace is not None and "workspace" in known:
        params.setdefault("workspace", str(Path(workspace).resolve()))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ReportError(f"report {path.stem!r}: unknown parameter(s) {unknown}; this report takes "
                          f"{sorted(known)} (worldengine-lab report {path.stem} --help-params)")
    json.dumps(params, default=str)
    html_path = Path(out)
    if html_path.suffix.lower() != ".html":
        raise DataFormatError(f"report out={html_path}: expected a .html file name")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    nb_path = html_path.with_suffix(".ipynb")
    started = utc_now_iso()
    old_renderer = os.environ.get("PLOTLY_RENDERER")
    os.environ["PLOTLY_RENDERER"] = _PLOTLY_RENDERER  # the kernel inherits it
    try:
        with tempfile.TemporaryDirectory(prefix=".report-", dir=html_path.parent) as tmp:
            executed = Path(tmp) / "executed.ipynb"
            try:
                nb = pm.execute_notebook(str(path), str(executed), parameters=params, kernel_name=kernel_name,
                                         progress_bar=False, cwd=str(html_path.parent), execution_timeout=timeout_s,
                                         log_output=False)
            except pm.PapermillExecutionError as exc:
                raise ReportError(f"report {path.stem!r}: cell {exc.cell_index} raised {exc.ename}: {exc.evalue}; "
                                  f"the partial notebook was not kept") from exc
    finally:
        if old_renderer is None:
            os.environ.pop("PLOTLY_RENDERER", None)
        else:
            os.environ["PLOTLY_RENDERER"] = old_renderer
    prov = {
        "report": path.stem, "template_sha256": sha256_file(path), "parameters": params,
        "workspace": params.get("workspace", str(workspace) if workspace is not None else None),
        "seeds": {k: v for k, v in params.items() if "seed" in k.lower()},
        "code_version": code_version(), "user": current_user(), "started_at": started, "finished_at": utc_now_iso(),
        **_collect(nb),
    }
    nb.metadata["worldengine_lab"] = prov
    nb.cells.insert(0, _provenance_cell(prov))
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    atomic_write_text(nb_path, nbformat.writes(nb))
    atomic_write_text(html_path, body)
    logger.info("report %s -> %s", path.stem, html_path)
    return ReportResult(html_path, nb_path, prov)
