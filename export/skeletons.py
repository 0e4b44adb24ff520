"""The template files shipped with the exporters (``hdl_templates/`` in the source tree,
``heatq_export/templates`` when installed): Verilog primitives copied verbatim, and
named-placeholder skeletons (``string.Template``) for whole generated files."""

from __future__ import annotations

import os
from pathlib import Path


def templates_dir() -> Path:
    """Where the HDL primitives and skeletons live: ``$HEATQ_HDL_TEMPLATES``, the source
    tree's ``hdl_templates/``, or ``templates/`` inside the installed package."""
    env = os.environ.get("HEATQ_HDL_TEMPLATES")
    cands = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    cands += [here.parent / "hdl_templates", here / "templates"]
    for c in cands:
        if (c / "hq_delay.v").is_file():
            return c
    raise FileNotFoundError("hdl_templates/ not found (set HEATQ_HDL_TEMPLATES)")


def read_template(name: str) -> str:
    """The text of template file ``name``."""
    return (templates_dir() / name).read_text()
