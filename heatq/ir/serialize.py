"""Save and load an IntGraph as JSON (structure) + .npz (integer arrays).  Never pickle.

``<stem>.ir.json`` holds ``{"format": "heatq-ir", "ir_version": 1, "weights": "<stem>.npz",
"meta": {...}, "outputs": [...], "nodes": [...]}``; each node lists its op, name, args, attrs,
shape, range and type.  Arrays are stored in the .npz under ``"<node id>.<field>"``.
Loading rebuilds every node through the rules and rejects any disagreement, so a hand-edited
or corrupt file fails with one clear message instead of producing a wrong network.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
import zipfile
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np

from .graph import GraphBuilder, IntGraph
from .errors import IRError
from .ops import SPECS, Op
from .types import IntType

IR_VERSION = 1
FORMAT = "heatq-ir"


@cache
def _field_types(cls: type) -> dict[str, Any]:
    """The declared type of every attribute field of ``cls``: an Enum field is stored by value,
    a field whose type has ``to_saved`` / ``from_saved`` (an adder graph) by that codec."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _is(t: Any, base: type) -> bool:
    return isinstance(t, type) and issubclass(t, base)


def _encode_attrs(node_id: int, attrs: Any, arrays: dict[str, np.ndarray]) -> dict:
    out = {}
    for f in fields(attrs):
        v = getattr(attrs, f.name)
        if isinstance(v, np.ndarray):
            key = f"{node_id}.{f.name}"
            arrays[key] = v
            out[f.name] = {"array": key}
        elif isinstance(v, enum.Enum):
            out[f.name] = v.value
        elif hasattr(v, "to_saved"):
            doc, tables = v.to_saved()
            keys = {}
            for part, a in tables.items():
                keys[part] = f"{node_id}.{f.name}.{part}"
                arrays[keys[part]] = a
            out[f.name] = {"saved": doc, "arrays": keys}
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def graph_to_json(graph: IntGraph, weights_name: str) -> tuple[str, dict[str, np.ndarray]]:
    """The JSON text (deterministic: sorted keys, fixed layout) and the arrays to store."""
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for n in graph.nodes:
        nodes.append({
            "id": n.id, "op": n.op.value, "name": n.name, "args": list(n.args),
            "attrs": _encode_attrs(n.id, n.attrs, arrays), "shape": list(n.shape),
            "range": [n.lo, n.hi],
            "type": {"signed": n.type.signed, "width": n.type.width, "frac": n.type.frac},
        })
    doc = {"format": FORMAT, "ir_version": IR_VERSION, "weights": weights_name,
           "meta": dict(graph.meta), "outputs": list(graph.outputs), "nodes": nodes}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n", arrays


def save(graph: IntGraph, directory: str | Path, stem: str = "model") -> Path:
    """Write ``<stem>.ir.json`` and ``<stem>.npz`` into ``directory`` (each atomically).
    Returns the JSON path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text, arrays = graph_to_json(graph, f"{stem}.npz")
    _atomic_write(directory / f"{stem}.npz", lambda f: np.savez(f, **arrays))
    _atomic_write(directory / f"{stem}.ir.json", lambda f: f.write(text.encode()))
    return directory / f"{stem}.ir.json"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        mask = os.umask(0o022)  # read the umask: mkstemp made the file 0600
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _decode_attrs(op: Op, raw: dict, arrays, where: str) -> Any:
    cls = SPECS[op].attrs_cls
    types = _field_types(cls)
    names = set(types)
    unknown = set(raw) - names
    if unknown:
        raise IRError(f"{where}: unknown attribute(s) {sorted(unknown)}")
    kwargs = {}
    for name, v in raw.items():
        t = types[name]
        if isinstance(v, dict) and "array" in v:
            kwargs[name] = _array(arrays, v["array"], name, where)
        elif _is(t, enum.Enum):
            try:
                kwargs[name] = t(v)
            except ValueError:
                raise IRError(f"{where}: unknown {name} mode {v!r}") from None
        elif hasattr(t, "from_saved"):
            if not (isinstance(v, dict) and isinstance(v.get("arrays"), dict)):
                raise IRError(f"{where}: attribute {name} is malformed")
            tables = {p: _array(arrays, k, name, where) for p, k in v["arrays"].items()}
            try:
                kwargs[name] = t.from_saved(v.get("saved") or {}, tables)
            except (IRError, KeyError) as e:
                raise IRError(f"{where}: {name}: {e}") from None
        elif _is(t, str):
            if not isinstance(v, str):
                raise IRError(f"{where}: attribute {name} must be a string, got {v!r}")
            kwargs[name] = v
        elif isinstance(v, list):
            kwargs[name] = tuple(v)
        elif isinstance(v, bool) or not isinstance(v, int):
            raise IRError(f"{where}: attribute {name} must be an integer, got {v!r}")
        else:
            kwargs[name] = v
    try:
        return cls(**kwargs)
    except (TypeError, IRError) as e:
        raise IRError(f"{where}: {e}") from None


def _array(arrays, key, name: str, where: str) -> np.ndarray:
    if not isinstance(key, str) or key not in arrays:
        raise IRError(f"{where}: array {key!r} is missing from the weights file")
    a = arrays[key]
    if a.dtype.kind not in "iub":
        raise IRError(f"{where}: {name} holds non-integer values (dtype {a.dtype})")
    return a.astype(object) if a.dtype == np.uint64 else a


def load(path: str | Path) -> IntGraph:
    """Load and fully verify a graph from ``<stem>.ir.json`` (or a directory holding
    ``model.ir.json``).  Raises IRError naming the file and the problem."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.ir.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise IRError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IRError(f"{path}: not valid JSON ({e})") from None
    try:
        return _from_doc(doc, path)
    except IRError as e:
        raise IRError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise IRError(f"{path}: malformed IR file ({type(e).__name__}: {e})") from None


def _from_doc(doc: dict, path: Path) -> IntGraph:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise IRError(f"not a {FORMAT} file")
    version = doc.get("ir_version")
    if type(version) is not int or version != IR_VERSION:
        raise IRError(f"unsupported ir_version {doc.get('ir_version')!r} "
                      f"(this heatq reads version {IR_VERSION})")
    wname = doc["weights"]
    if not isinstance(wname, str) or Path(wname).name != wname or wname in ("", ".", ".."):
        raise IRError(f"weights must be a file name beside the JSON file, got {wname!r}")
    wpath = path.parent / wname
    try:
        with np.load(wpath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise IRError(f"weights file {wpath} not found") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise IRError(f"weights file {wpath} is corrupt ({e})") from None
    b = GraphBuilder()
    for i, raw in enumerate(doc["nodes"]):
        try:
            op = Op(raw["op"])
        except ValueError:
            raise IRError(f"node {i}: unknown op {raw['op']!r}") from None
        where = f"node {i} ({raw.get('name', '')})"
        if raw["id"] != i:
            raise IRError(f"{where}: id {raw['id']} out of order")
        b.add(op, _decode_attrs(op, raw["attrs"], arrays, where), raw["args"], raw.get("name", ""))
        n = b.nodes[-1]
        t = raw["type"]
        stored = (tuple(raw["shape"]), tuple(raw["range"]),
                  IntType(bool(t["signed"]), int(t["width"]), int(t["frac"])))
        if stored != (n.shape, (n.lo, n.hi), n.type):
            raise IRError(f"{where}: stored shape/range/type {stored[0]} {stored[1]} "
                          f"{stored[2].c_style()} disagree with the rules "
                          f"({n.shape} {(n.lo, n.hi)} {n.type.c_style()})")
    return b.build(doc["outputs"], doc.get("meta", {}))
