"""The model pack: the one hand-off between training and hardware (docs/pack-format.md).

A pack is a ZIP archive (stored, fixed timestamps, so identical content gives identical bytes)
holding ``manifest.json`` and, per layer, NumPy ``.npy`` arrays ``layers/<i>/{a,b,rowptr,cols,vals}.npy``.
``read_pack`` validates everything and raises PackError with one readable message.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import doping
from doping.compression import account
from doping.errors import PackError
from doping.fileio import atomic_path
from doping.golden import QuantLayer, Requant

FORMAT = "doping-pack"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
ARRAYS = ("a", "b", "rowptr", "cols", "vals")
_DTYPES = {"a": np.int8, "b": np.int8, "vals": np.int8, "rowptr": np.int64, "cols": np.int64}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class Pack:
    """A validated pack: its layers and provenance."""

    layers: list[QuantLayer]
    provenance: dict = field(default_factory=dict)
    version: int = VERSION

    def layer(self, name: str | None = None) -> QuantLayer:
        if name is None:
            return self.layers[0]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise PackError(f"pack has no layer {name!r}; layers: {[l.name for l in self.layers]}")


def layer_compression(layer: QuantLayer):
    return account(layer.m, layer.n, layer.factor_shapes, layer.nnz)


def _requant_json(rq: Requant) -> dict:
    return {"multiplier": rq.multiplier, "shift": rq.shift}


def layer_manifest(i: int, layer: QuantLayer) -> dict:
    (m1, n1), (m2, n2) = layer.factor_shapes
    rn = layer.row_nnz()
    return {
        "name": layer.name,
        "shape": [layer.m, layer.n],
        "factors": {"a": [m1, n1], "b": [m2, n2]},
        "order": layer.order,
        "overlay": {"format": "csr-by-row", "nnz": layer.nnz, "max_row_nnz": int(rn.max(initial=0)),
                    "empty_rows": int(np.count_nonzero(rn == 0))},
        "quant": {
            "x_scale": layer.x_scale, "a_scale": layer.a_scale, "b_scale": layer.b_scale,
            "intermediate_requant": _requant_json(layer.t_rq),
            "overlay_requant": _requant_json(layer.ov_rq),
            "output_requant": _requant_json(layer.y_rq),
            "value_bits": 8, "accumulator_bits": 32, "rounding": "half-up", "saturation": True,
        },
        "compression": layer_compression(layer).as_dict(),
        "arrays": {k: f"layers/{i}/{k}.npy" for k in ARRAYS},
        "meta": layer.meta,
    }


def totals(layers: list[QuantLayer]) -> dict:
    """Compression of all layers together (sums of parameters and bits)."""
    cs = [layer_compression(l) for l in layers]
    dp, p = sum(c.dense_params for c in cs), sum(c.params for c in cs)
    db, sb = sum(c.dense_bits for c in cs), sum(c.stored_bits for c in cs)
    return {"dense_params": dp, "params": p, "param_ratio": dp / p, "dense_bits": db,
            "stored_bits": sb, "bit_ratio": db / sb}


def write_pack(path, layers: list[QuantLayer], provenance: dict | None = None) -> Path:
    """Validate ``layers`` and write them atomically as a pack at ``path``."""
    if not layers:
        raise PackError("a pack needs at least one layer")
    names = [l.name for l in layers]
    if len(set(names)) != len(names):
        raise PackError(f"layer names must be unique, got {names}")
    for layer in layers:
        layer.validate()
    manifest = {
        "format": FORMAT, "version": VERSION, "created_by": f"doping {doping.__version__}",
        "provenance": dict(provenance or {}), "totals": totals(layers),
        "layers": [layer_manifest(i, l) for i, l in enumerate(layers)],
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            _put(zf, "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
            for i, layer in enumerate(layers):
                for k in ARRAYS:
                    buf = io.BytesIO()
                    np.save(buf, np.ascontiguousarray(getattr(layer, k), dtype=_DTYPES[k]), allow_pickle=False)
                    _put(zf, f"layers/{i}/{k}.npy", buf.getvalue())
    return path


def _put(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def read_manifest(path) -> tuple[dict, zipfile.ZipFile]:
    path = Path(path)
    if not path.exists():
        raise PackError(f"pack {path} does not exist")
    if path.is_dir():
        raise PackError(f"pack {path} is a directory, expected a pack file")
    try:
        zf = zipfile.ZipFile(path)
        raw = zf.read("manifest.json")
    except KeyError:
        raise PackError(f"{path} is not a doping model pack: it has no manifest.json") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise PackError(f"{path} is not a doping model pack (truncated or not a ZIP archive: {e})") from None
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PackError(f"{path}: manifest.json is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(f"{path} is not a doping model pack (manifest format is not {FORMAT!r})")
    version = manifest.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise PackError(
            f"{path}: unsupported pack version {version!r}; this doping {doping.__version__} reads version(s) "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    return manifest, zf


def _field(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise PackError(f"{where}: manifest entry {key!r} is missing")
    return obj[key]


def _requant(obj: dict, key: str, where: str) -> Requant:
    d = _field(obj, key, where)
    try:
        return Requant(int(_field(d, "multiplier", f"{where} {key}")), int(_field(d, "shift", f"{where} {key}")))
    except (ValueError, TypeError) as e:
        raise PackError(f"{where}: {key}: {e}") from None


def _load_array(zf: zipfile.ZipFile, member: str, where: str, key: str) -> np.ndarray:
    try:
        raw = zf.read(member)
    except KeyError:
        raise PackError(f"{where}: array {key!r} ({member}) is missing from the pack") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise PackError(f"{where}: array {key!r} ({member}) is corrupt: {e}") from None
    try:
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise PackError(f"{where}: array {key!r} ({member}) is not a readable .npy array: {e}") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.integer):
        raise PackError(f"{where}: array {key!r} has dtype {getattr(arr, 'dtype', '?')}, expected integers")
    return arr


def read_pack(path) -> Pack:
    """Read and validate a pack. Raises PackError naming the first problem found."""
    manifest, zf = read_manifest(path)
    with zf:
        entries = _field(manifest, "layers", str(path))
        if not isinstance(entries, list) or not entries:
            raise PackError(f"{path}: manifest lists no layers")
        layers = []
        for i, entry in enumerate(entries):
            where = f"{path}: layer {i}"
            name = str(_field(entry, "name", where))
            where = f"{path}: layer {i} ({name})"
            shape = _field(entry, "shape", where)
            factors = _field(entry, "factors", where)
            quant = _field(entry, "quant", where)
            arrays = _field(entry, "arrays", where)
            data = {k: _load_array(zf, str(_field(arrays, k, where)), where, k) for k in ARRAYS}
            for k in ("a", "b"):
                want = tuple(_field(factors, k, where))
                if data[k].shape != want:
                    raise PackError(f"{where}: factor {k.upper()} array has shape {data[k].shape}, manifest says {want}")
            try:
                layer = QuantLayer(
                    name=name, shape=tuple(int(s) for s in shape), a=data["a"], b=data["b"],
                    rowptr=data["rowptr"].astype(np.int64), cols=data["cols"].astype(np.int64), vals=data["vals"],
                    order=_field(entry, "order", where), x_scale=float(_field(quant, "x_scale", where)),
                    a_scale=float(_field(quant, "a_scale", where)), b_scale=float(_field(quant, "b_scale", where)),
                    t_rq=_requant(quant, "intermediate_requant", where), ov_rq=_requant(quant, "overlay_requant", where),
                    y_rq=_requant(quant, "output_requant", where), meta=dict(entry.get("meta") or {}),
                )
            except (TypeError, ValueError) as e:
                raise PackError(f"{where}: malformed manifest entry ({e})") from None
            try:
                layer.validate()
            except PackError as e:
                raise PackError(f"{path}: {e}") from None
            nnz = _field(_field(entry, "overlay", where), "nnz", where)
            if nnz != layer.nnz:
                raise PackError(f"{where}: manifest says {nnz} overlay nonzeros, the arrays hold {layer.nnz}")
            for k in ("a", "b", "vals"):
                setattr(layer, k, getattr(layer, k).astype(np.int8))
            layers.append(layer)
        return Pack(layers=layers, provenance=dict(manifest.get("provenance") or {}), version=manifest["version"])


def summary(pack: Pack) -> dict:
    """The machine-readable summary printed by ``doping pack inspect --json``."""
    out = {"version": pack.version, "provenance": pack.provenance, "totals": totals(pack.layers), "layers": []}
    for i, layer in enumerate(pack.layers):
        entry = layer_manifest(i, layer)
        del entry["arrays"]
        entry["scales"] = layer.scales()
        out["layers"].append(entry)
    return out
