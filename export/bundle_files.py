"""The bundle's generated files besides the RTL, rendered from the ``hdl_templates/bundle_*.tmpl``
templates (jinja2) with the design's facts: the file list, the FuseSoC core, the EDAM
description, the constraints, both test benches, the report and the README.

Every value comes from the Verilog design (:class:`heatq_export.verilog.Design`: files, port
map, report) and the bundle's options; nothing depends on the machine (tool versions go to
``manifest.json`` only), so the same graph and options give byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .bundle_vectors import STALL_SEED, out_fields
from .skeletons import templates_dir
from .verilog import PRIMITIVES

@dataclass
class BundleContext:
    """What the templates are rendered from.  ``rtl``: bundle paths in compile order;
    ``top_ports``: ``[(direction, width, name)]`` in declaration order (the design's
    ``ports["port_list"]``)."""

    top: str
    vlnv: str
    version: str
    design: Any  # heatq_export.verilog.Design
    rtl: list[str]
    top_ports: list[tuple[str, int, str]]
    options: dict[str, Any]
    golden: dict[str, Any]  # vectors.json's meta (without the expected values)


def top_ports(ports: dict[str, Any]) -> list[tuple[str, int, str]]:
    """The top module's ports ``(input|output, width, name)``, in declaration order, from the
    Verilog export's ``summary.json["ports"]``."""
    return [(p["dir"], p["width"], p["name"]) for p in ports["port_list"]]


def compile_order(files: dict[str, Any], top: str) -> list[str]:
    """``rtl/`` paths: the primitives (in :data:`PRIMITIVES` order), the layer modules
    (sorted), the top last."""
    prims = [p for p in PRIMITIVES if p in files]
    layers = sorted(p for p in files if p.endswith(".v") and p not in prims and p != f"{top}.v")
    return [f"rtl/{p}" for p in prims + layers + [f"{top}.v"]]


def render(name: str, **ctx: Any) -> str:
    """Template ``hdl_templates/name`` rendered with ``ctx`` (every name must be given)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    return env.get_template(name).render(**ctx)


def _num(x: float) -> str:
    return f"{x:g}"


def _common(c: BundleContext) -> dict[str, Any]:
    o = c.options
    return {"top": c.top, "vlnv": c.vlnv, "version": c.version,
            "mode": c.design.ports["mode"], "stream": c.design.ports["mode"] == "stream",
            "clock_period": _num(o["clock_period"]),
            "xilinx_part": o["xilinx_part"], "intel_family": json.dumps(o["intel_family"]),
            "intel_device": o["intel_device"], "rtl": c.rtl}


def testbench(c: BundleContext) -> str:
    d = c.design.report["design"]
    fields = out_fields(c.design.ports)
    doc = "{" + ", ".join(f["port"] for f in reversed(fields)) + "}"
    return render("bundle_tb.v.tmpl", **_common(c), fields=fields, out_concat_doc=doc,
                  tdata_w=c.design.ports["s_tdata"]["width"],
                  out_w=sum(f["width"] for f in fields), n_beats=c.golden["n_beats"],
                  n_results=c.golden["n_vectors"], max_cycles=c.golden["max_cycles"],
                  latency=d["latency"], ii=d["ii"] or -1, stall_seed=STALL_SEED,
                  half_period=_num(c.options["clock_period"] / 2))


def edam(c: BundleContext) -> str:
    """edalize 0.6 EDAM of the ``sim`` test bench; file names relative to ``build/edam``."""
    files = [{"name": f"../../{p}", "file_type": "verilogSource"} for p in c.rtl]
    files.append({"name": f"../../tb/{c.top}_tb.v", "file_type": "verilogSource"})
    params = {k: {"datatype": "str", "paramtype": "plusarg", "default": f"../../tb/vectors/{v}",
                  "description": f"golden {v}"} for k, v in (("in_hex", "in.hex"),
                                                             ("out_hex", "out.hex"))}
    e = {"name": f"{c.top}_tb", "toplevel": f"{c.top}_tb", "files": files, "parameters": params,
         "tool_options": {"icarus": {"iverilog_options": ["-g2005"]}}}
    return json.dumps(e, indent=2, sort_keys=True) + "\n"


_MEANING = {
    "clk": "clock (rising edge)", "rst": "reset: synchronous, active high",
    "s_tvalid": "input beat valid", "s_tready": "input beat accepted when high with s_tvalid",
    "s_tlast": "set on each image's last pixel", "m_tvalid": "a result is on the m_* ports",
    "m_tready": "the consumer takes the result (back-pressure)",
    "err": "sticky error: s_tlast out of place, or a FIFO overflow",
}


def _port_rows(c: BundleContext) -> list[dict[str, Any]]:
    ports = c.design.ports
    outs = {o["port"]: o for o in ports["outputs"]}
    s = ports["s_tdata"]
    sign = lambda signed: "signed" if signed else "unsigned"  # noqa: E731
    rows = []
    for direction, width, name in c.top_ports:
        if name == "s_tdata":
            what = "pixel: channel" if ports["mode"] == "stream" else "vector: element"
            meaning = (f"one {what} c at bits [c*{s['elem_width']} +: {s['elem_width']}], "
                       f"{s['elems']} x {s['elem_width']}-bit {sign(s['elem_signed'])}")
        elif name in outs:
            o = outs[name]
            meaning = (f"output `{o['name']}`: {o['elems']} x {o['elem_width']}-bit "
                       f"{sign(o['elem_signed'])}, element j at [j*{o['elem_width']} +: "
                       f"{o['elem_width']}]")
        else:
            meaning = _MEANING.get(name, f"see the header of rtl/{c.top}.v")
        rows.append({"name": name, "dir": direction, "width": width, "meaning": meaning})
    return rows


def _texts(c: BundleContext) -> dict[str, str]:
    stream = c.design.ports["mode"] == "stream"
    inp = ("AXI-Stream, one pixel per beat in raster order (row by row), `s_tlast` on each "
           "image's last pixel; a beat is taken at a rising edge with `s_tvalid && s_tready`; "
           "the host holds a beat until `s_tready` (low during a conv window's padding steps, "
           "and while the output side is back-pressured)." if stream else
           "one whole vector per beat, taken at a rising edge with `s_tvalid && s_tready` "
           "(`s_tready` is low during reset and while the output side is back-pressured): up "
           "to one vector per clock.")
    out = ("a result is taken at a rising edge with `m_tvalid && m_tready`; while `m_tvalid && "
           "!m_tready` the outputs hold (no result is lost or duplicated).")
    err = "`s_tlast` out of place, or a FIFO overflow (never, by the design's sizing)."
    stalls = ("Both benches stall `m_tready` with a seeded random pattern "
              "(cocotb: `HEATQ_STALLS=0` / `HEATQ_STALL_SEED=N`; Verilog: `+no_stalls` / "
              "`+stall_seed=N`); without stalls they also check latency and II.")
    return {"input_text": inp, "output_text": out, "err_text": err, "stall_text": stalls}


def readme(c: BundleContext) -> str:
    d, g, o = c.design.report["design"], c.golden, c.options
    unit = "image" if c.design.ports["mode"] == "stream" else "vector"
    ii = d["ii"] or 1
    fields = out_fields(c.design.ports)
    layers = [{"name": k, "design": v.get("design", "parallel"), "adders": v.get("adders", 0),
               "adder_bits": v.get("adder_bits", 0), "latency": v.get("latency"),
               "ii": v.get("ii")} for k, v in c.design.report.items()
              if k != "design" and isinstance(v, dict)]
    mode_text = (f"Stream mode: input `[C, H, W]` = {list(c.design.lowered.nodes[0].shape)}, "
                 "one pixel per clock." if unit == "image" else
                 f"Parallel mode: input vector of {c.design.ports['s_tdata']['elems']} "
                 "elements, one vector per clock, fully pipelined.")
    return render(
        "bundle_readme.md.tmpl", **_common(c), **_texts(c), ports=_port_rows(c),
        mode_text=mode_text, mhz=_num(round(1000 / o["clock_period"], 3)),
        latency=d["latency"], latency_last=d["latency_from_last_input"], ii=ii, unit=unit,
        throughput=_num(round(1e9 / (o["clock_period"] * ii), 1)), adders=d["adders"],
        adder_bits=d["adder_bits"], longest_carry=d["longest_carry"], layers=layers,
        estimate_text="; `estimate`: yosys figures" if o["estimate"] else "",
        golden_text=g["inputs"], n_vectors=g["n_vectors"], n_beats=g["n_beats"],
        in_word_width=g["in_word"]["width"], tdata_width=g["in_word"]["tdata_width"],
        out_word_width=g["out_word"]["width"],
        out_fields=", ".join(f"`{f['port']}` bits {f['lsb'] + f['width'] - 1}..{f['lsb']}"
                             for f in fields))


def bundle_texts(c: BundleContext) -> dict[str, str]:
    """Every generated file of the bundle but the RTL, the vectors and the manifest."""
    common = _common(c)
    t = c.top
    return {
        f"{t}.f": "".join(p + "\n" for p in c.rtl),
        f"{t}.core": render("bundle_core.tmpl", **common),
        "edam.json": edam(c),
        f"constraints/{t}.xdc": render("bundle_xdc.tmpl", **common),
        f"constraints/{t}.sdc": render("bundle_sdc.tmpl", **common),
        f"tb/{t}_tb.v": testbench(c),
        f"tb/{t}_cocotb.py": render("bundle_cocotb.py.tmpl", **common),
        f"tb/test_{t}.py": render("bundle_runner.py.tmpl", **common),
        "tb/Makefile": render("bundle_makefile.tmpl", **common),
        "report.json": json.dumps(c.design.report, indent=2, sort_keys=True) + "\n",
        "README.md": readme(c),
    }
