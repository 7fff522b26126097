"""The model pack: the one hand-off between training and hardware (docs/pack-format.md).

A pack is a ZIP archive (stored, fixed timestamps, so identical content gives identical bytes)
holding ``manifest.json`` and, per layer, NumPy ``.npy`` arrays ``layers/<i>/{a,b,rowptr,cols,vals}.npy``;
an LSTM pack (version 3) adds, per LSTM layer, ``lstm/<k>/{bias,sigmoid,tanh,tanh_c}.npy`` and the
cell's requantisations (golden/lstm.py).
``read_pack`` validates everything and raises PackError with one readable message.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import doping
from doping.compression import account
from doping.errors import DopingError, PackError
from doping.fileio import atomic_path, check_input_file, read_npy_header, signals_held
from doping.golden import QuantLayer, Requant
from doping.golden.lstm import LUT_SIZE, LSTMLayerQuant

FORMAT = "doping-pack"
#: Version 2 adds layers without a Kronecker part ("factors": null) and chains ("input"); version 3
#: the integer LSTM around the gate layers ("lstm").
VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
ARRAYS = ("a", "b", "rowptr", "cols", "vals")
LSTM_ARRAYS = ("bias", "sigmoid", "tanh", "tanh_c")
LSTM_REQUANTS = ("pre", "cell", "h", "out")
_DTYPES = {"a": np.int8, "b": np.int8, "vals": np.int8, "rowptr": np.int64, "cols": np.int64,
           "bias": np.int32, "sigmoid": np.int16, "tanh": np.int16, "tanh_c": np.int16}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# Limits that are part of the format (docs/pack-format.md, "Limits"): checked against the manifest
# and each member's declared sizes before anything is read or allocated.
MAX_DIM = 65536  # m, n and every factor dimension
MAX_ELEMENTS = 1 << 26  # entries of any one array (and overlay nonzeros)
MAX_TOTAL_BYTES = 1 << 30  # all arrays of a pack, uncompressed
MAX_MANIFEST_BYTES = 1 << 22
#: A pack holds a few arrays per layer: more members than this is not a pack (and a central
#: directory of millions of entries would take gigabytes to read).
MAX_MEMBERS = 10_000


def _zip_members_declared(path) -> int | None:
    """The member count a ZIP's end-of-central-directory record declares (read before the
    directory itself), or None when there is no such record."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 65557))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 12 > len(tail):
        return None
    return int.from_bytes(tail[at + 10: at + 12], "little")
MAX_LAYERS = 4096
MAX_LSTM_LAYERS = 64
_NPY_HEADER_MAX = 4096  # bytes of .npy magic + header the reader accepts


@dataclass
class Pack:
    """A validated pack: its layers and provenance."""

    layers: list[QuantLayer]
    provenance: dict = field(default_factory=dict)
    version: int = VERSION
    #: the integer LSTM stack whose gate mat-vecs are ``layers`` (None: a pack of layers only)
    lstm: list[LSTMLayerQuant] | None = None

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
        "factors": {"a": [m1, n1], "b": [m2, n2]} if layer.has_kp else None,
        "input": layer.input,
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
    """Compression of all layers together (sums of parameters and bits). A chain (LMF's V then U)
    replaces one dense matrix: the last layer's outputs by the first layer's inputs."""
    cs = [layer_compression(l) for l in layers]
    p, sb = sum(c.params for c in cs), sum(c.stored_bits for c in cs)
    by_name = {l.name: l for l in layers}
    consumed = {l.input for l in layers}
    dense = []
    for l in layers:
        if l.name in consumed:
            continue  # an inner stage of a chain
        root = l
        while root.input is not None:
            root = by_name[root.input]
        dense.append(account(l.m, root.n, ((l.m, root.n), (1, 1)), 0))
    dp, db = sum(c.dense_params for c in dense), sum(c.dense_bits for c in dense)
    return {"dense_params": dp, "params": p, "param_ratio": dp / p, "dense_bits": db,
            "stored_bits": sb, "bit_ratio": db / sb}


def _check_lstm(layers: list[QuantLayer], lstm: list[LSTMLayerQuant], where: str) -> None:
    """An LSTM stack over the pack's layers: each LSTM layer's gates are pack layers (a chain from
    its input [x; h]), no layer serves two LSTM layers, and layer k's input is layer k-1's h."""
    if not lstm or len(lstm) > MAX_LSTM_LAYERS:
        raise PackError(f"{where}an LSTM stack needs 1..{MAX_LSTM_LAYERS} layers, got {len(lstm)}")
    by_name, used = {l.name: l for l in layers}, set()
    for k, cell in enumerate(lstm):
        for g in cell.gates:
            if by_name.get(g.name) is not g:
                raise PackError(f"{where}LSTM layer {k}: gate layer {g.name!r} is not a layer of the pack")
            if g.name in used:
                raise PackError(f"{where}LSTM layer {k}: gate layer {g.name!r} already serves another LSTM layer")
            used.add(g.name)
        if cell.gates[0].input is not None:
            raise PackError(f"{where}LSTM layer {k}: its first gate layer takes [x; h], not another layer's output")
        try:
            cell.validate()
        except PackError as e:
            raise PackError(f"{where}LSTM layer {k}: {e}") from None
        if k and cell.input_size != lstm[k - 1].hidden:
            raise PackError(f"{where}LSTM layer {k} takes {cell.input_size} inputs besides h, but LSTM layer "
                            f"{k - 1} has hidden size {lstm[k - 1].hidden}")


def lstm_manifest(k: int, cell: LSTMLayerQuant) -> dict:
    return {"gates": [g.name for g in cell.gates], "hidden": cell.hidden,
            "requant": {r: _requant_json(getattr(cell, f"{r}_rq")) for r in LSTM_REQUANTS},
            "arrays": {a: f"lstm/{k}/{a}.npy" for a in LSTM_ARRAYS}}


def check_layer_name(name, where: str) -> None:
    """A layer name reaches terminals, reports and plots: 1-200 printable characters that UTF-8
    can encode (no lone surrogates, no control characters)."""
    if not isinstance(name, str) or not name or len(name) > 200:
        raise PackError(f"{where}: layer name must be a non-empty string of at most 200 characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise PackError(f"{where}: layer name {name!r} is not valid Unicode text (a lone surrogate)") from None
    if not name.isprintable():
        raise PackError(f"{where}: layer name {name!r} holds control characters")


def write_pack(path, layers: list[QuantLayer], provenance: dict | None = None,
               lstm: list[LSTMLayerQuant] | None = None) -> Path:
    """Validate ``layers`` (and the LSTM stack over them, if given) and write them atomically as a
    pack at ``path``."""
    if not layers:
        raise PackError("a pack needs at least one layer")
    names = [l.name for l in layers]
    if len(set(names)) != len(names):
        raise PackError(f"layer names must be unique, got {names}")
    for i, layer in enumerate(layers):
        check_layer_name(layer.name, f"layer {i}")
        layer.validate()
        _check_input(layers[:i], layer, "")
    if lstm is not None:
        _check_lstm(layers, lstm, "")
    manifest = {
        "format": FORMAT, "version": VERSION, "created_by": f"doping {doping.__version__}",
        "provenance": dict(provenance or {}), "totals": totals(layers),
        "layers": [layer_manifest(i, l) for i, l in enumerate(layers)],
    }
    if lstm is not None:
        manifest["lstm"] = [lstm_manifest(k, c) for k, c in enumerate(lstm)]
    path = Path(path)
    # held until the archive is closed (a pack is written in well under a second)
    with atomic_path(path) as tmp, signals_held():
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            _put(zf, "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
            for i, layer in enumerate(layers):
                for k in ARRAYS:
                    buf = io.BytesIO()
                    np.save(buf, np.ascontiguousarray(getattr(layer, k), dtype=_DTYPES[k]), allow_pickle=False)
                    _put(zf, f"layers/{i}/{k}.npy", buf.getvalue())
            for k, cell in enumerate(lstm or []):
                for a in LSTM_ARRAYS:
                    buf = io.BytesIO()
                    np.save(buf, np.ascontiguousarray(getattr(cell, a), dtype=_DTYPES[a]), allow_pickle=False)
                    _put(zf, f"lstm/{k}/{a}.npy", buf.getvalue())
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
        check_input_file(path, "pack")
    except DopingError as e:
        raise PackError(str(e)) from None
    declared = _zip_members_declared(path)
    if declared is not None and declared > MAX_MEMBERS:
        raise PackError(f"{path} declares {declared} members, more than the {MAX_MEMBERS} a pack may hold")
    try:
        zf = zipfile.ZipFile(path)
        names = zf.namelist()
        if len(names) > MAX_MEMBERS:
            raise PackError(f"{path} has {len(names)} members, more than the {MAX_MEMBERS} a pack may hold")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})[:3]
            raise PackError(f"{path} holds members more than once ({', '.join(map(repr, dup))}): not a valid pack")
        info = zf.getinfo("manifest.json")
        if info.file_size > MAX_MANIFEST_BYTES:
            raise PackError(f"{path}: manifest.json declares {info.file_size} bytes, more than the "
                            f"{MAX_MANIFEST_BYTES} allowed")
        with zf.open(info) as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise PackError(f"{path}: manifest.json is larger than the {MAX_MANIFEST_BYTES} bytes allowed")
    except KeyError:
        raise PackError(f"{path} is not a doping model pack: it has no manifest.json") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as e:
        raise PackError(f"{path} is not a doping model pack (truncated or not a ZIP archive: {e})") from None
    try:
        manifest = json.loads(raw, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise PackError(f"{path}: manifest.json is not valid JSON ({e})") from None
    except RecursionError:
        raise PackError(f"{path}: manifest.json is nested too deeply") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(f"{path} is not a doping model pack (manifest format is not {FORMAT!r})")
    version = manifest.get("version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:  # noqa: E721 (true == 1 is no version)
        raise PackError(
            f"{path}: unsupported pack version {version!r}; this doping {doping.__version__} reads version(s) "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    return manifest, zf


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a pack may hold")


def _int(value, what: str, where: str, lo: int = 0, hi: int = MAX_ELEMENTS) -> int:
    """A manifest integer: a JSON integer (not a float, not a boolean) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PackError(f"{where}: {what} must be an integer, got {value!r:.60}")
    if not lo <= value <= hi:
        raise PackError(f"{where}: {what} {value} is outside {lo}..{hi}")
    return value


def _real(value, what: str, where: str) -> float:
    """A manifest scale: a finite positive JSON number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise PackError(f"{where}: {what} must be a finite positive number, got {value!r:.60}")
    return float(value)


def _pair(value, what: str, where: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise PackError(f"{where}: {what} must be a pair [rows, cols], got {value!r:.60}")
    return tuple(_int(v, what, where, 1, MAX_DIM) for v in value)


def _check_input(before: list[QuantLayer], layer: QuantLayer, where: str) -> None:
    """A chained layer takes an earlier layer's output: that layer exists and its m is our n."""
    if layer.input is None:
        return
    src = {l.name: l for l in before}.get(layer.input)
    if src is None:
        raise PackError(f"{where}layer {layer.name!r} takes its input from {layer.input!r}, which is not an "
                        "earlier layer of the pack")
    if src.m != layer.n:
        raise PackError(f"{where}layer {layer.name!r} has {layer.n} inputs but its input layer {src.name!r} has "
                        f"{src.m} outputs")


def _field(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise PackError(f"{where}: manifest entry {key!r} is missing")
    return obj[key]


def _requant(obj: dict, key: str, where: str) -> Requant:
    d = _field(obj, key, where)
    w = f"{where} {key}"
    # types here; the ranges of numerics.md are Requant.validate's
    return Requant(_int(_field(d, "multiplier", w), "multiplier", w, -(1 << 62), 1 << 62),
                   _int(_field(d, "shift", w), "shift", w, -(1 << 62), 1 << 62))


def _load_array(zf: zipfile.ZipFile, member: str, where: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """One .npy member, checked before it is read: its declared size in the archive, then its
    header's dtype and shape against what the manifest implies (``shape``); the body is read with
    a bound, so a member that inflates past its size is refused, not decompressed."""
    dtype = np.dtype(_DTYPES[key])
    body = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise PackError(f"{where}: array {key!r} ({member}) is missing from the pack") from None
    if info.file_size > body + _NPY_HEADER_MAX:
        raise PackError(f"{where}: array {key!r} ({member}) declares {info.file_size} bytes; a {dtype} array of "
                        f"shape {shape} needs {body} plus its header")
    try:
        with zf.open(info) as f:
            got_shape, fortran, got_dtype = read_npy_header(f, _NPY_HEADER_MAX)
            if got_dtype.hasobject or not np.issubdtype(got_dtype, np.integer):
                raise PackError(f"{where}: array {key!r} has dtype {got_dtype}, expected integers")
            if tuple(got_shape) != tuple(shape):
                raise PackError(f"{where}: array {key!r} has shape {tuple(got_shape)}, the manifest implies {shape}")
            size = int(np.prod(got_shape, dtype=np.int64)) * got_dtype.itemsize
            raw = f.read(size + 1)
    except PackError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError, SyntaxError,
            TypeError) as e:
        raise PackError(f"{where}: array {key!r} ({member}) is not a readable .npy array: {str(e)[:200]}") from None
    if len(raw) != size:
        raise PackError(f"{where}: array {key!r} ({member}) holds {len(raw)} data bytes, its header says {size}")
    arr = np.frombuffer(raw, dtype=got_dtype)
    return arr.reshape(got_shape, order="F" if fortran else "C")


def _layer_geometry(entry: dict, where: str, version: int) -> dict:
    """Shapes of a layer's arrays from its manifest entry, every number type- and range-checked."""
    m, n = _pair(_field(entry, "shape", where), "shape", where)
    factors = _field(entry, "factors", where)
    if factors is None:  # no Kronecker part
        if version < 2:
            raise PackError(f"{where}: factors null (a layer without a Kronecker part) needs pack version 2")
        a = b = (0, 0)
    else:
        a = _pair(_field(factors, "a", where), "factor A shape", where)
        b = _pair(_field(factors, "b", where), "factor B shape", where)
    nnz = _int(_field(_field(entry, "overlay", where), "nnz", where), "overlay nnz", where)
    for what, count in (("factor A", a[0] * a[1]), ("factor B", b[0] * b[1]), ("row pointers", m + 1)):
        if count > MAX_ELEMENTS:
            raise PackError(f"{where}: {what} would hold {count} entries, more than the {MAX_ELEMENTS} allowed")
    return {"m": m, "n": n, "a": a, "b": b, "rowptr": (m + 1,), "cols": (nnz,), "vals": (nnz,), "nnz": nnz}


def read_pack(path) -> Pack:
    """Read and validate a pack. Raises PackError naming the first problem found."""
    manifest, zf = read_manifest(path)
    with zf:
        try:
            return _read_layers(path, manifest, zf)
        except PackError:
            raise
        except (TypeError, ValueError, OverflowError, AttributeError, KeyError, IndexError, RecursionError) as e:
            # anything the checks above did not anticipate is still one line, never a traceback
            raise PackError(f"{path}: malformed pack ({type(e).__name__}: {str(e)[:200]})") from None


def _read_layers(path, manifest: dict, zf: zipfile.ZipFile) -> Pack:
    entries = _field(manifest, "layers", str(path))
    if not isinstance(entries, list) or not entries:
        raise PackError(f"{path}: manifest lists no layers")
    if len(entries) > MAX_LAYERS:
        raise PackError(f"{path}: manifest lists {len(entries)} layers, more than the {MAX_LAYERS} allowed")
    provenance = manifest.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise PackError(f"{path}: manifest provenance must be an object")
    layers, names, total = [], set(), 0
    for i, entry in enumerate(entries):
        where = f"{path}: layer {i}"
        name = _field(entry, "name", where)
        check_layer_name(name, where)
        if name in names:
            raise PackError(f"{where}: duplicate layer name {name!r}")
        names.add(name)
        where = f"{path}: layer {i} ({name})"
        geo = _layer_geometry(entry, where, manifest["version"])
        total += sum(int(np.prod(geo[k])) * np.dtype(_DTYPES[k]).itemsize for k in ARRAYS)
        if total > MAX_TOTAL_BYTES:
            raise PackError(f"{path}: the arrays would take more than the {MAX_TOTAL_BYTES} bytes a pack may hold")
        quant = _field(entry, "quant", where)
        arrays = _field(entry, "arrays", where)
        if not isinstance(arrays, dict):
            raise PackError(f"{where}: manifest entry 'arrays' must be an object")
        data = {k: _load_array(zf, str(_field(arrays, k, where)), where, k, geo[k]) for k in ARRAYS}
        order = _field(entry, "order", where)
        meta = entry.get("meta") or {}
        if not isinstance(meta, dict):
            raise PackError(f"{where}: layer meta must be an object")
        source = entry.get("input") if manifest["version"] >= 2 else None
        if source is not None and not isinstance(source, str):
            raise PackError(f"{where}: layer input must be a layer name or null, got {source!r:.60}")
        layer = QuantLayer(
            name=name, shape=(geo["m"], geo["n"]), a=data["a"], b=data["b"],
            rowptr=data["rowptr"].astype(np.int64), cols=data["cols"].astype(np.int64), vals=data["vals"],
            order=order, x_scale=_real(_field(quant, "x_scale", where), "x_scale", where),
            a_scale=_real(_field(quant, "a_scale", where), "a_scale", where),
            b_scale=_real(_field(quant, "b_scale", where), "b_scale", where),
            t_rq=_requant(quant, "intermediate_requant", where), ov_rq=_requant(quant, "overlay_requant", where),
            y_rq=_requant(quant, "output_requant", where), meta=dict(meta), input=source,
        )
        try:
            layer.validate()
            _check_input(layers, layer, "")
        except PackError as e:
            raise PackError(f"{path}: {e}") from None
        for k in ("a", "b", "vals"):
            setattr(layer, k, getattr(layer, k).astype(np.int8))
        layers.append(layer)
    lstm = _read_lstm(path, manifest, zf, layers) if manifest.get("lstm") is not None else None
    return Pack(layers=layers, provenance=dict(provenance), version=manifest["version"], lstm=lstm)


def _read_lstm(path, manifest: dict, zf: zipfile.ZipFile, layers: list[QuantLayer]) -> list[LSTMLayerQuant]:
    if manifest["version"] < 3:
        raise PackError(f"{path}: an LSTM section needs pack version 3")
    entries = manifest["lstm"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_LSTM_LAYERS:
        raise PackError(f"{path}: manifest lstm must list 1..{MAX_LSTM_LAYERS} LSTM layers")
    by_name, out = {l.name: l for l in layers}, []
    for k, entry in enumerate(entries):
        where = f"{path}: LSTM layer {k}"
        gates = _field(entry, "gates", where)
        if not isinstance(gates, list) or not gates or not all(isinstance(g, str) for g in gates):
            raise PackError(f"{where}: gates must be a non-empty list of layer names")
        missing = [g for g in gates if g not in by_name]
        if missing:
            raise PackError(f"{where}: gate layer {missing[0]!r} is not a layer of the pack")
        hidden = _int(_field(entry, "hidden", where), "hidden", where, 1, MAX_DIM)
        requants = _field(entry, "requant", where)
        arrays = _field(entry, "arrays", where)
        if not isinstance(arrays, dict):
            raise PackError(f"{where}: manifest entry 'arrays' must be an object")
        shapes = {"bias": (4 * hidden,), "sigmoid": (LUT_SIZE,), "tanh": (LUT_SIZE,), "tanh_c": (LUT_SIZE,)}
        data = {}
        for a in LSTM_ARRAYS:
            raw = _load_array(zf, str(_field(arrays, a, where)), where, a, shapes[a])
            data[a] = raw.astype(_DTYPES[a])
            if not np.array_equal(data[a], raw):
                raise PackError(f"{where}: {a} holds values outside {np.dtype(_DTYPES[a])}")
        rq = {r: _requant(requants, r, where) for r in LSTM_REQUANTS}
        out.append(LSTMLayerQuant(gates=[by_name[g] for g in gates], hidden=hidden, bias=data["bias"],
                                  pre_rq=rq["pre"], cell_rq=rq["cell"], h_rq=rq["h"], out_rq=rq["out"],
                                  sigmoid=data["sigmoid"], tanh=data["tanh"], tanh_c=data["tanh_c"]))
    _check_lstm(layers, out, f"{path}: ")
    return out


def summary(pack: Pack) -> dict:
    """The machine-readable summary printed by ``doping pack inspect --json``."""
    out = {"version": pack.version, "provenance": pack.provenance, "totals": totals(pack.layers), "layers": []}
    for i, layer in enumerate(pack.layers):
        entry = layer_manifest(i, layer)
        del entry["arrays"]
        entry["scales"] = layer.scales()
        out["layers"].append(entry)
    if pack.lstm is not None:
        out["lstm"] = []
        for k, cell in enumerate(pack.lstm):
            entry = lstm_manifest(k, cell)
            del entry["arrays"]
            out["lstm"].append(entry)
    return out
