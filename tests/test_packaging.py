"""The wheel ships every package: pyproject's explicit package list names each directory
with an ``__init__.py`` (an omitted one works in an editable install and breaks a real one)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _installed_name(package_dir: dict[str, str], path: Path) -> str:
    rel = path.relative_to(ROOT)
    for name, src in sorted(package_dir.items(), key=lambda kv: -len(kv[1])):
        src_path = Path(src)
        if rel == src_path or src_path in rel.parents:
            return ".".join([name, *rel.relative_to(src_path).parts])
    raise AssertionError(f"{rel} is under no package_dir entry")


def test_every_package_directory_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {_installed_name(cfg["package-dir"], init.parent)
             for top in ("heatq", "export", "sim") for init in (ROOT / top).rglob("__init__.py")}
    assert found, "no packages found"
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"
