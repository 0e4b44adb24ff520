"""The bundle's ``manifest.json`` and its check (``heatq verify-bundle``).

``manifest.json``: ``{"format", "top", "vlnv", "heatq_version", "ir_sha256" (sha256 of
model.ir.json's bytes followed by model.npz's), "tools" (iverilog, verilator, yosys, fusesoc,
edalize, cocotb: the versions found when the bundle was generated, null when absent),
"files": {path: sha256} (every file of the bundle but manifest.json itself), "ignored"}``.
``ignored`` names the build outputs the tools write inside the bundle (FuseSoC's ``build/``,
cocotb's ``tb/sim_build/`` and ``tb/results.xml``, Python caches), which the check skips.
The tool versions are recorded here only, so the other files do not depend on them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = "heatq-bundle/1"
IGNORED = ("build/", "tb/sim_build/", "tb/results.xml", "tb/__pycache__/", ".pytest_cache/",
           "tb/.pytest_cache/")


def _first_line(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (r.stdout or r.stderr).strip()
    return text.splitlines()[0].strip() if text else None


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def tool_versions() -> dict[str, str | None]:
    """The versions of the tools the bundle's flows use, as found on this machine."""
    return {"iverilog": _first_line(["iverilog", "-V"]),
            "verilator": _first_line(["verilator", "--version"]),
            "yosys": _first_line(["yosys", "-V"]),
            "fusesoc": _dist_version("fusesoc"), "edalize": _dist_version("edalize"),
            "cocotb": _dist_version("cocotb")}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ignored(rel: str) -> bool:
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in IGNORED) or \
        "/__pycache__/" in f"/{rel}"


def bundle_files(root: Path) -> list[str]:
    """Every file under ``root`` (POSIX relative paths, sorted) but the manifest and the
    ignored build outputs."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if (p.is_file() or p.is_symlink()) and rel != MANIFEST and not _ignored(rel):
            out.append(rel)
    return sorted(out)


def write_manifest(root: Path, top: str, vlnv: str, heatq_version: str) -> dict[str, Any]:
    """Hash every file of the bundle at ``root`` and write ``manifest.json``."""
    ir = hashlib.sha256((root / "model.ir.json").read_bytes() + (root / "model.npz").read_bytes())
    manifest = {"format": FORMAT, "top": top, "vlnv": vlnv, "heatq_version": heatq_version,
                "ir_sha256": ir.hexdigest(), "tools": tool_versions(),
                "files": {rel: _sha(root / rel) for rel in bundle_files(root)},
                "ignored": list(IGNORED)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify(root: str | Path) -> tuple[dict[str, Any], list[str]]:
    """Recheck a bundle: ``(manifest, problems)``, one line per missing, edited or extra
    file (naming it); raises ``ValueError`` (one line) when there is no readable manifest."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (not a heatq bundle?)") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise ValueError(f"{path}: not a heatq bundle manifest (format {FORMAT})")
    listed = manifest["files"]
    problems = []
    for rel, digest in sorted(listed.items()):
        p = root / rel
        if not p.is_file():
            problems.append(f"{rel}: missing (listed in {MANIFEST})")
        elif _sha(p) != digest:
            problems.append(f"{rel}: edited (sha256 differs from {MANIFEST})")
    problems += [f"{rel}: extra file (not in {MANIFEST})" for rel in bundle_files(root)
                 if rel not in listed]
    return manifest, problems
