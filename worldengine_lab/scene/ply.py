"""INRIA 3D Gaussian Splatting PLY files (spec ``gaussian-splatting.md`` §8.1, ``data-formats.md`` §3).

A file stores one ``vertex`` element of float properties: ``x y z``, optional ``nx ny nz``, ``f_dc_0..2``,
``f_rest_*`` (channel-major: ``f_rest_{c·(K−1) + k−1}`` is SH coefficient k >= 1 of channel c), ``opacity``
(logit), ``scale_0..2`` (log σ) and ``rot_0..3`` (w, x, y, z, unnormalised). Properties are located by name.

Two views of the same data:

* :class:`PlyGaussians` keeps the **stored** values exactly as in the file, so ``read_ply_raw`` then
  ``write_ply`` reproduces the vertex data bit for bit;
* :func:`read_ply` returns an activated :class:`GaussianScene` (σ = exp, o = sigmoid, raw quats, raw SH).
  Activation is not bitwise invertible in float32 (log(exp(x)) may differ in the last bit), which is why the
  stored view exists.

Binary little-endian is read and written; binary big-endian and ASCII files are read too. Writes are atomic
(temporary file in the same folder, then rename).
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datatypes import GaussianScene
from ..errors import CorruptFileError, DataFormatError, MissingFileError, ShapeError

__all__ = ["PlyGaussians", "read_ply", "read_ply_raw", "write_ply", "SH_C0"]

log = logging.getLogger(__name__)

SH_C0 = 0.28209479177387814
"""Band-0 SH constant: rgb = 0.5 + SH_C0 · f_dc."""
_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_FORMATS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "ascii"}
_REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}
_MAX_HEADER = 1 << 20


@dataclass(frozen=True, eq=False)
class PlyGaussians:
    """G Gaussians with the values a PLY stores (float32 unless the file says otherwise).

    Attributes:
        means: ``[G, 3]`` m (the file carries no frame; whatever frame it was written in).
        f_dc: ``[G, 3]`` SH band 0 per channel (rgb = 0.5 + SH_C0 · f_dc).
        f_rest: ``[G, K − 1, 3]`` SH bands >= 1, coefficient-major (as ``GaussianScene.sh[:, 1:]``).
        opacity_logit: ``[G]`` logit of the opacity.
        log_scales: ``[G, 3]`` log σ (m).
        quats: ``[G, 4]`` (w, x, y, z), unnormalised.
        normals: ``[G, 3]`` or None (INRIA writes zeros; gsplat omits them).
    """

    means: np.ndarray  # [G, 3] float32, m
    f_dc: np.ndarray  # [G, 3] float32
    f_rest: np.ndarray  # [G, K-1, 3] float32
    opacity_logit: np.ndarray  # [G] float32
    log_scales: np.ndarray  # [G, 3] float32
    quats: np.ndarray  # [G, 4] float32
    normals: np.ndarray | None = None  # [G, 3] float32

    def __post_init__(self) -> None:
        g = self.means.shape[0]
        want = {"means": (g, 3), "f_dc": (g, 3), "opacity_logit": (g,), "log_scales": (g, 3), "quats": (g, 4)}
        for name, shape in want.items():
            if getattr(self, name).shape != shape:
                raise ShapeError(f"PlyGaussians.{name}: expected shape {list(shape)}, received "
                                 f"{list(getattr(self, name).shape)}")
        if self.f_rest.ndim != 3 or self.f_rest.shape[0] != g or self.f_rest.shape[2] != 3 \
                or self.f_rest.shape[1] + 1 not in (1, 4, 9, 16):
            raise ShapeError(f"PlyGaussians.f_rest: expected [G, K − 1, 3] with K in (1, 4, 9, 16), received "
                             f"{list(self.f_rest.shape)}")
        if self.normals is not None and self.normals.shape != (g, 3):
            raise ShapeError(f"PlyGaussians.normals: expected [{g}, 3], received {list(self.normals.shape)}")

    @property
    def num_gaussians(self) -> int:
        """G."""
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """SH degree d (K = (d + 1)² bases)."""
        return int(round(np.sqrt(self.f_rest.shape[1] + 1))) - 1

    def invalid_rows(self) -> np.ndarray:
        """``[R]`` int64 rows holding NaN/Inf in any stored value, or an all-zero quaternion."""
        parts = [self.means, self.f_dc, self.f_rest.reshape(self.num_gaussians, -1), self.opacity_logit[:, None],
                 self.log_scales, self.quats]
        bad = ~np.concatenate([np.isfinite(p) for p in parts], axis=1).all(1)
        bad |= (self.quats == 0).all(1)
        return np.flatnonzero(bad)

    def select(self, mask: np.ndarray) -> "PlyGaussians":
        """The rows where ``mask [G]`` is True."""
        m = np.asarray(mask, bool)
        return PlyGaussians(self.means[m], self.f_dc[m], self.f_rest[m], self.opacity_logit[m], self.log_scales[m],
                            self.quats[m], None if self.normals is None else self.normals[m])

    def to_scene(self) -> GaussianScene:
        """Activate: σ = exp(log σ), o = sigmoid(logit) (both computed in float64, cast to float32); quats and
        SH are passed through unchanged (the renderer normalises quats)."""
        with np.errstate(over="ignore"):
            scales = np.exp(self.log_scales.astype(np.float64))
            opac = 1.0 / (1.0 + np.exp(-self.opacity_logit.astype(np.float64)))
        sh = np.concatenate([self.f_dc[:, None, :], self.f_rest], axis=1)
        return GaussianScene(self.means.astype(np.float32), self.quats.astype(np.float32), scales.astype(np.float32),
                             opac.astype(np.float32), sh.astype(np.float32))

    @staticmethod
    def from_scene(scene: GaussianScene, normals: bool = False) -> "PlyGaussians":
        """Stored values of an activated scene: log σ and logit(o) in float64, cast to float32.

        Opacities of exactly 0 or 1 are clipped to [1e-7, 1 − 1e-7] before the logit (finite stored values).
        """
        o = np.clip(scene.opacities.astype(np.float64), 1e-7, 1.0 - 1e-7)
        with np.errstate(divide="ignore"):
            log_s = np.log(np.maximum(scene.scales.astype(np.float64), np.finfo(np.float64).tiny))
        g = scene.num_gaussians
        return PlyGaussians(
            means=scene.means.astype(np.float32), f_dc=scene.sh[:, 0].astype(np.float32),
            f_rest=scene.sh[:, 1:].astype(np.float32), opacity_logit=np.log(o / (1.0 - o)).astype(np.float32),
            log_scales=log_s.astype(np.float32), quats=scene.quats.astype(np.float32),
            normals=np.zeros((g, 3), np.float32) if normals else None)


# ---------------------------------------------------------------------------------------------- reading
def _parse_header(path: Path, data: bytes) -> tuple[str, int, list[tuple[str, int, list[tuple[str, str]]]]]:
    """``(format, data offset, [(element, count, [(property, numpy type)])])`` of a PLY header."""
    if not data.startswith(b"ply"):
        raise CorruptFileError(f"{path}: not a PLY file (starts with {data[:8]!r}); expected the 'ply' magic line")
    end = data.find(b"end_header", 0, _MAX_HEADER)
    if end < 0:
        raise CorruptFileError(f"{path}: no 'end_header' line in the first {_MAX_HEADER} bytes; the file is "
                               "truncated or not a PLY")
    nl = data.find(b"\n", end)
    if nl < 0:
        raise CorruptFileError(f"{path}: the header ends without a newline after 'end_header'; the file is truncated")
    lines = data[:end].decode("ascii", errors="replace").replace("\r", "").split("\n")
    fmt, elements = "", []
    for line in lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) < 2 or words[1] not in _FORMATS:
                raise DataFormatError(f"{path}: unsupported PLY format line {line!r}; expected one of "
                                      f"{sorted(_FORMATS)}")
            fmt = _FORMATS[words[1]]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise CorruptFileError(f"{path}: malformed header line {line!r}; expected 'element NAME COUNT'")
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise CorruptFileError(f"{path}: 'property' before any 'element' in the header")
            if words[1] == "list":
                elements[-1][2].append((words[-1], "list"))
            elif len(words) == 3 and words[1] in _TYPES:
                elements[-1][2].append((words[2], _TYPES[words[1]]))
            else:
                raise DataFormatError(f"{path}: unsupported property line {line!r}; expected 'property TYPE NAME' "
                                      f"with TYPE in {sorted(_TYPES)}")
    if not fmt:
        raise CorruptFileError(f"{path}: the PLY header has no 'format' line")
    return fmt, nl + 1, elements


def _vertex_table(path: Path, data: bytes) -> np.ndarray:
    """The ``vertex`` element as a structured array (native byte order)."""
    fmt, offset, elements = _parse_header(path, data)
    names = [e[0] for e in elements]
    if "vertex" not in names:
        raise DataFormatError(f"{path}: the PLY has no 'vertex' element (elements: {names}); a 3DGS PLY stores one "
                              "Gaussian per vertex")
    if fmt == "ascii":
        for name, count, props in elements:
            if name == "vertex":
                break
            if count and any(t == "list" for _, t in props):
                raise DataFormatError(f"{path}: ASCII element {name!r} before 'vertex' has list properties; unsupported")
            offset = _skip_lines(data, offset, count, path)
        props = elements[names.index("vertex")][2]
        count = elements[names.index("vertex")][1]
        dtype = np.dtype([(n, t) for n, t in props])
        text = data[offset:].split(b"\n", count)[:count]
        if len(text) < count:
            raise CorruptFileError(f"{path}: expected {count} ASCII vertex lines, found {len(text)}; the file is truncated")
        try:
            rows = np.array([ln.split() for ln in text], dtype=np.float64) if count else np.zeros((0, len(props)))
        except ValueError as exc:
            raise CorruptFileError(f"{path}: malformed ASCII vertex data ({exc})") from exc
        if rows.shape[1:] != (len(props),):
            raise CorruptFileError(f"{path}: expected {len(props)} values per vertex line, received {rows.shape[1:]}")
        out = np.zeros(count, dtype)
        for i, (n, _) in enumerate(props):
            out[n] = rows[:, i]
        return out
    for name, count, props in elements:
        if any(t == "list" for _, t in props):
            if name == "vertex":
                raise DataFormatError(f"{path}: the vertex element has list properties; not a 3DGS PLY")
            raise DataFormatError(f"{path}: element {name!r} has list properties before/after 'vertex'; only fixed-size "
                                  "elements are supported")
        dtype = np.dtype([(n, fmt + t) for n, t in props])
        if name == "vertex":
            need = offset + count * dtype.itemsize
            if len(data) < need:
                raise CorruptFileError(
                    f"{path}: truncated: the header declares {count} vertices of {dtype.itemsize} bytes "
                    f"({need - offset} bytes), the file holds {len(data) - offset}; download or export it again")
            return np.frombuffer(data, dtype, count, offset).astype(dtype.newbyteorder("="))
        offset += count * dtype.itemsize
    raise AssertionError("unreachable")


def _skip_lines(data: bytes, offset: int, count: int, path: Path) -> int:
    for _ in range(count):
        nl = data.find(b"\n", offset)
        if nl < 0:
            raise CorruptFileError(f"{path}: the file is truncated inside an ASCII element")
        offset = nl + 1
    return offset


def _column_block(path: Path, table: np.ndarray, names: list[str]) -> np.ndarray:
    have = table.dtype.names or ()
    missing = [n for n in names if n not in have]
    if missing:
        raise DataFormatError(f"{path}: the vertex element lacks propert{'ies' if len(missing) > 1 else 'y'} {missing} "
                              f"(has {list(have)}); expected the INRIA 3DGS layout (data-formats §3.2)")
    kinds = {table.dtype[n].kind for n in names}
    if not kinds <= {"f"}:
        raise DataFormatError(f"{path}: properties {names} must be float; received kinds {sorted(kinds)} "
                              "(a compressed / packed PLY is not the INRIA layout)")
    return np.stack([table[n] for n in names], axis=1) if names else np.zeros((len(table), 0), np.float32)


def read_ply_raw(path: str | Path, *, drop_invalid: bool = False) -> PlyGaussians:
    """Read the stored values of an INRIA 3DGS PLY (see the module doc).

    Raises:
        MissingFileError: no such file. CorruptFileError: not a PLY, or truncated.
        DataFormatError: missing properties, an f_rest count that is not 0/9/24/45, list properties.
        ShapeError: rows with NaN/Inf (or an all-zero quaternion), named, unless ``drop_invalid=True``
            (then they are dropped with a warning).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such PLY file; pass the path of a 3DGS .ply")
    table = _vertex_table(path, path.read_bytes())
    names = table.dtype.names or ()
    rest = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n[7:]) if n[7:].isdigit() else -1)
    if len(rest) not in _REST_COUNTS or [n for n in rest] != [f"f_rest_{i}" for i in range(len(rest))]:
        raise DataFormatError(f"{path}: expected 0, 9, 24 or 45 properties f_rest_0..N−1 (SH degree 0-3), received "
                              f"{len(rest)}; this is not an INRIA 3DGS PLY of degree <= 3")
    g, k1 = len(table), len(rest) // 3
    f_rest = _column_block(path, table, rest).reshape(g, 3, k1).transpose(0, 2, 1)  # channel-major -> [G, K-1, 3]
    has_n = all(n in names for n in ("nx", "ny", "nz"))
    out = PlyGaussians(
        means=_column_block(path, table, ["x", "y", "z"]),
        f_dc=_column_block(path, table, ["f_dc_0", "f_dc_1", "f_dc_2"]),
        f_rest=np.ascontiguousarray(f_rest),
        opacity_logit=_column_block(path, table, ["opacity"])[:, 0],
        log_scales=_column_block(path, table, ["scale_0", "scale_1", "scale_2"]),
        quats=_column_block(path, table, ["rot_0", "rot_1", "rot_2", "rot_3"]),
        normals=_column_block(path, table, ["nx", "ny", "nz"]) if has_n else None,
    )
    bad = out.invalid_rows()
    if len(bad):
        if not drop_invalid:
            shown = ", ".join(str(int(i)) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise ShapeError(f"{path}: {len(bad)} of {g} Gaussians hold NaN/Inf values or a zero quaternion (rows "
                             f"{shown}); pass drop_invalid=True to drop them")
        log.warning("%s: dropped %d of %d invalid Gaussians (NaN/Inf or zero quaternion)", path, len(bad), g)
        keep = np.ones(g, bool)
        keep[bad] = False
        out = out.select(keep)
    return out


def read_ply(path: str | Path, *, drop_invalid: bool = False) -> GaussianScene:
    """Read an INRIA 3DGS PLY as an activated GaussianScene (all Gaussians background, ``actor_ids == -1``).

    ``means [G, 3]`` in the file's frame, ``scales`` = exp(log σ), ``opacities`` = sigmoid(logit), quats and
    SH ``[G, K, 3]`` as stored. Errors as :func:`read_ply_raw`.
    """
    return read_ply_raw(path, drop_invalid=drop_invalid).to_scene()


# ---------------------------------------------------------------------------------------------- writing
def write_ply(path: str | Path, gaussians: GaussianScene | PlyGaussians, *, normals: bool | None = None) -> Path:
    """Write binary little-endian INRIA 3DGS PLY, atomically; returns the path.

    Args:
        gaussians: stored values (:class:`PlyGaussians`, written bit for bit) or an activated GaussianScene
            (converted with :meth:`PlyGaussians.from_scene`; actor ids are not stored).
        normals: write ``nx ny nz`` (zeros unless the PlyGaussians carries normals). Default: only when the
            PlyGaussians has normals.
    Raises:
        ShapeError: rows with NaN/Inf, named (fix or drop them first).
    """
    path = Path(path)
    raw = gaussians if isinstance(gaussians, PlyGaussians) else PlyGaussians.from_scene(gaussians)
    bad = raw.invalid_rows()
    if len(bad):
        raise ShapeError(f"write_ply: {len(bad)} Gaussians hold NaN/Inf or a zero quaternion (rows "
                         f"{bad[:10].tolist()}); drop them with .select(mask) before writing")
    with_n = raw.normals is not None if normals is None else normals
    g, k1 = raw.num_gaussians, raw.f_rest.shape[1]
    cols: list[tuple[str, np.ndarray]] = [(n, raw.means[:, i]) for i, n in enumerate("xyz")]
    if with_n:
        nrm = raw.normals if raw.normals is not None else np.zeros((g, 3), np.float32)
        cols += [(n, nrm[:, i]) for i, n in enumerate(("nx", "ny", "nz"))]
    cols += [(f"f_dc_{i}", raw.f_dc[:, i]) for i in range(3)]
    rest = raw.f_rest.transpose(0, 2, 1).reshape(g, 3 * k1)  # channel-major
    cols += [(f"f_rest_{i}", rest[:, i]) for i in range(3 * k1)]
    cols += [("opacity", raw.opacity_logit)]
    cols += [(f"scale_{i}", raw.log_scales[:, i]) for i in range(3)]
    cols += [(f"rot_{i}", raw.quats[:, i]) for i in range(4)]
    table = np.empty(g, np.dtype([(n, "<f4") for n, _ in cols]))
    for n, v in cols:
        table[n] = v
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {g}\n" + \
        "".join(f"property float {n}\n" for n, _ in cols) + "end_header\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header.encode("ascii"))
            fh.write(table.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("wrote %d Gaussians (SH degree %d) to %s", g, raw.sh_degree, path)
    return path
