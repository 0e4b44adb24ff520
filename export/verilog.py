"""The Verilog target: synthesizable Verilog-2001 of a whole IntGraph.

Two architectures, chosen by the input's shape:

* **stream** (input ``[C, H, W]``): pixels enter one per clock on an AXI-Stream-like port
  (``s_tdata`` = the C channel values of one pixel, channel c at bits ``[c*w +: w]``;
  ``s_tvalid`` / ``s_tready`` / ``s_tlast`` marking each image's last pixel).  Each CONV2D is a
  'same'-padded window unit (``hq_window``: line buffer as a shift register, walking the
  padded raster, so ``s_tready`` drops on padding positions) feeding one layer module that
  computes all output channels of one window position with the adder graph of
  :mod:`heatq.lower` and requantizes (wiring + clip).  Max pooling streams with a row
  buffer (``hq_maxpool2``), FLATTEN collects the last feature map (``hq_collect``), and the
  fully connected layers, SIGN_BITS and the Hamming decoder (``hq_hamming``) run on whole
  vectors.  Between stream layers a FIFO (depth from the cycle model) absorbs the
  stalls of the next window's padding steps.  Internally every stage is valid-only.
* **parallel** (input ``[n]``): one vector per clock (``s_tready`` is always 1), fully
  pipelined, II = 1.

Outputs: one port ``m_<name>`` per graph output (element j at ``[j*w +: w]``, w = the node's
type width, two's complement when signed), all valid in the cycle ``m_tvalid`` is high;
``err`` is a sticky flag (``s_tlast`` out of place, or a FIFO overflow: never, by the model's
sizing).  Reset: synchronous, active-high ``rst``.

Latency and II are stated in the report (``summary()["report"]["design"]``) from
:mod:`export.verilog_schedule`'s cycle model; the simulation bench measures and checks them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from heatq.ir import IntGraph, IntType, Op
from heatq.lower import LoweredGraph, lower_cmvm, lower_graph

from .base import EmitError, Emitter, EmitOption
from .verilog_layers import RequantSpec, layer_module
from .verilog_netlist import VModule, read_template
from .verilog_schedule import Stage, simulate

PRIMITIVES = ("hq_delay.v", "hq_vdelay.v", "hq_fifo.v", "hq_window.v", "hq_maxpool2.v",
              "hq_collect.v", "hq_hamming.v")


def _clog2(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _ident(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", s)
    return s if s and not s[0].isdigit() else "n" + s


@dataclass
class _Sig:
    """A value travelling between units: valid + data, element type, layout."""

    valid: str
    data: str
    etype: IntType
    domain: str  # 'stream' or 'vector'
    elems: int  # per pixel (stream) or per vector
    ready: str | None = None  # stream source that can stall (the host port)
    last: str | None = None
    time: int = 0  # vector domain: cycles after the vector domain's start


@dataclass
class Design:
    top: str
    files: dict[str, str]
    report: dict[str, Any]
    ports: dict[str, Any]
    lowered: LoweredGraph = field(repr=False, default=None)  # type: ignore[assignment]


class VerilogEmitter(Emitter):
    """``VerilogEmitter(top="heatq_top", max_carry=None, cse=True)``.

    ``max_carry=K``: every adder registered, no carry chain over K bits between registers."""

    target = "verilog"
    supported_ops = frozenset(Op)
    options = (EmitOption("max_carry", int, "longest carry chain (bits); every adder registered",
                          minimum=1),
               EmitOption("estimate", bool, "yosys LUT/CARRY4/FF estimate per layer (slow)",
                          default=False))

    def __init__(self, top: str = "heatq_top", max_carry: int | None = None, cse: bool = True,
                 estimate: bool = False):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
            raise ValueError(f"top module name {top!r} is not a Verilog identifier")
        if max_carry is not None and max_carry < 1:
            raise ValueError(f"max_carry must be >= 1, got {max_carry}")
        self.top = top
        self.max_carry = max_carry
        self.cse = cse
        self.estimate = estimate
        self._cache: dict[int, tuple[IntGraph, Design]] = {}

    def design(self, graph: IntGraph) -> Design:
        hit = self._cache.get(id(graph))
        if hit is not None and hit[0] is graph:
            return hit[1]
        d = _Builder(self, graph).build()
        self._cache[id(graph)] = (graph, d)
        return d

    def emit(self, graph: IntGraph) -> dict[str, str]:
        return dict(self.design(graph).files)

    def summary(self, graph: IntGraph, files: Mapping[str, str]) -> dict[str, Any]:
        d = self.design(graph)
        return {"top": d.top, "report": d.report, "ports": d.ports}

    def finish(self, export_dir) -> None:
        """``estimate``: yosys figures into the export's summary.json, inside the atomic write."""
        if self.estimate:
            from .estimate import estimate_export

            estimate_export(export_dir)


class _Builder:
    def __init__(self, em: VerilogEmitter, graph: IntGraph):
        self.em = em
        self.g = graph
        self.top = em.top
        self.files: dict[str, str] = {}
        self.stages: list[Stage] = []
        self.layers: dict[str, dict[str, Any]] = {}
        self.errs: list[str] = []
        self.fifos: list[tuple[str, str]] = []  # (instance, parameter placeholder)

    # ------------------------------------------------------------------------------ helpers
    def lname(self, nid: int) -> str:
        n = self.g.nodes[nid]
        return _ident(n.name) if n.name else f"node{nid}"

    def add_layer(self, nid: int, cmvm, in_types, in_off, nx, out_type, rq, kind) -> tuple[str, int]:
        mod = f"{self.top}_{self.lname(nid)}"
        n = self.g.nodes[nid]
        doc = (f"{mod}: {kind} '{n.name}' (node {nid}) as an adder graph: "
               f"{len(cmvm.adders)} adders, {len(cmvm.outputs)} outputs, "
               f"{'max carry ' + str(cmvm.max_carry) if cmvm.pipelined else 'combinational'}.")
        text, lat = layer_module(mod, cmvm, in_types, in_off, nx, out_type, rq, doc)
        self.files[f"{mod}.v"] = text
        st = cmvm.stats()
        self.layers[self.lname(nid)] = {
            "op": kind, "module": mod, "adders": st["adders"], "adder_bits": st["adder_bits"],
            "carry_bits": st["carry_bits"], "longest_carry": st["longest_carry"],
            "carry_per_stage": st["carry_per_stage"], "adder_depth": st["adder_depth"],
            "pipeline_depth": st["pipeline_depth"], "latency": lat, "ii": 1,
        }
        return mod, lat

    @staticmethod
    def requant_spec(node) -> RequantSpec:
        a = node.attrs
        return RequantSpec(a.shift, a.lo, a.hi, a.overflow)

    # ------------------------------------------------------------------------------ build
    def build(self) -> Design:
        g = self.g
        em = self.em
        lg = lower_graph(g, max_carry=em.max_carry, cse=em.cse)
        self.lg = lg
        inp = g.nodes[0]
        mode = "stream" if len(inp.shape) == 3 else "parallel"
        if len(inp.shape) not in (1, 3):
            raise EmitError(f"input shape {inp.shape}: only [C, H, W] or [n]")
        m = VModule(self.top, "")
        self.m = m
        m.input("clk", 1)
        m.input("rst", 1)
        sigs: dict[int, _Sig] = {}
        w_in = inp.type.width
        if mode == "stream":
            C = inp.shape[0]
            m.input("s_tdata", C * w_in)
            m.input("s_tvalid", 1)
            m.output("s_tready", 1)
            m.input("s_tlast", 1)
            sigs[0] = _Sig("s_tvalid", "s_tdata", inp.type, "stream", C, ready="s_tready",
                           last="s_tlast")
        else:
            m.input("s_tdata", inp.size * w_in)
            m.input("s_tvalid", 1)
            m.output("s_tready", 1)
            sigs[0] = _Sig("s_tvalid", "s_tdata", inp.type, "vector", inp.size)
            m.line("assign s_tready = 1'b1;")
        ports_out = []
        out_names = self._out_port_names()
        for k, o in enumerate(g.outputs):
            n = g.nodes[o]
            ports_out.append((out_names[k], o, n.size * n.type.width))
        m.output("m_tvalid", 1)
        for pname, o, w in ports_out:
            m.output(pname, w)
        m.output("err", 1)
        self.host_ready_used = False
        done_fused: set[int] = set()
        for n in g.nodes[1:]:
            if n.id in done_fused:
                continue
            arg = sigs[n.args[0]]
            if n.op is Op.CONV2D:
                sigs[n.id], fused = self.conv(n, arg)
                if fused is not None:
                    sigs[fused] = sigs[n.id]
                    done_fused.add(fused)
            elif n.op is Op.DENSE:
                sigs[n.id], fused = self.dense(n, arg)
                if fused is not None:
                    sigs[fused] = sigs[n.id]
                    done_fused.add(fused)
            elif n.op is Op.REQUANT:
                sigs[n.id] = self.requant(n, arg)
            elif n.op is Op.MAXPOOL2D:
                sigs[n.id] = self.pool(n, arg)
            elif n.op is Op.FLATTEN:
                sigs[n.id] = self.flatten(n, arg)
            elif n.op is Op.SIGN_BITS:
                sigs[n.id] = self.sign_bits(n, arg)
            elif n.op is Op.HAMMING_DECODE:
                sigs[n.id] = self.hamming(n, arg)
            else:
                raise EmitError(f"{n.label()}: op {n.op.value} has no Verilog unit")
        if mode == "stream" and not self.host_ready_used:
            m.line("assign s_tready = 1'b1;")
            m.all("s_tlast")
        # ---- outputs, aligned in time
        outs = [sigs[o] for _, o, _ in ports_out]
        for s, (pname, o, _) in zip(outs, ports_out):
            if s.domain != "vector":
                raise EmitError(f"graph output {self.g.nodes[o].label()} is a "
                                "feature map; only vector outputs are supported")
        t_max = max(s.time for s in outs)
        src = max(outs, key=lambda s: s.time)
        m.line(f"assign m_tvalid = {m.all(src.valid)};")
        for s, (pname, o, w) in zip(outs, ports_out):
            d = t_max - s.time
            if d == 0:
                m.line(f"assign {pname} = {m.all(s.data)};")
            else:
                m.line(f"hq_delay #(.WIDTH({w}), .DEPTH({d})) u_align_{pname} "
                       f"(.clk({m.all('clk')}), .d({m.all(s.data)}), .q({pname}));")
        if self.errs:
            m.line(f"assign err = {' | '.join(m.all(e) for e in self.errs)};")
        else:
            m.line("assign err = 1'b0;")
        # ---- schedule: latency, II, FIFO depths
        sched = simulate(self.stages, t_max)
        text = m.render()
        for inst, ph in self.fifos:
            depth = max(2, sched["fifo_depths"].get(inst, 1) + 2)
            text = text.replace(ph, str(_clog2(depth)))
        m_doc = self._doc(mode, sched)
        self.files[f"{self.top}.v"] = m_doc + text
        used = "\n".join(self.files.values())
        for p in PRIMITIVES:
            if re.search(rf"\b{p[:-2]}\b", used):
                self.files[p] = read_template(p)
        ports = {
            "mode": mode,
            "clock": "clk", "reset": "rst (synchronous, active high)",
            "s_tdata": {"width": m.width["s_tdata"], "elem_width": w_in,
                        "elem_signed": inp.type.signed,
                        "elems": inp.shape[0] if mode == "stream" else inp.size},
            "outputs": [{"port": pname, "node": o, "name": self.g.nodes[o].name,
                         "elems": self.g.nodes[o].size,
                         "elem_width": self.g.nodes[o].type.width,
                         "elem_signed": self.g.nodes[o].type.signed}
                        for pname, o, _ in ports_out],
        }
        report = dict(self.layers)
        report["design"] = {
            "mode": mode, "max_carry": em.max_carry, "cse": em.cse,
            "latency": sched["latency"], "latency_from_last_input": sched["latency_last"],
            "ii": sched["ii"], "vector_latency": t_max,
            "fifo_depths": {k: 1 << _clog2(max(2, v + 2))
                            for k, v in sched["fifo_depths"].items()},
            "adders": sum(v["adders"] for v in self.layers.values()),
            "adder_bits": sum(v["adder_bits"] for v in self.layers.values()),
            "longest_carry": max((v["longest_carry"] for v in self.layers.values()), default=0),
            "files": sorted(self.files),
        }
        return Design(self.top, self.files, report, ports, lg)

    def _doc(self, mode: str, sched) -> str:
        lines = [
            f"{self.top}: heatq design ({mode} mode), generated from an IntGraph.",
            "Ports: clk, rst (sync, active high); s_tdata/s_tvalid/s_tready"
            + ("/s_tlast (one pixel per beat)" if mode == "stream" else " (one vector per beat)")
            + "; m_tvalid with m_<output> data; err (sticky).",
            f"Latency: {sched['latency']} cycles from the first input beat to m_tvalid; "
            f"II: {sched['ii']} cycles per {'image' if mode == 'stream' else 'vector'}.",
        ]
        return "".join("// " + ln + "\n" for ln in lines)

    def _out_port_names(self) -> list[str]:
        names = []
        for k, o in enumerate(self.g.outputs):
            n = self.g.nodes[o]
            base = f"m_{_ident(n.name)}" if n.name else f"m_out{k}"
            if base in names or base in ("m_tvalid",):
                base = f"m_out{k}"
            names.append(base)
        return names

    # ------------------------------------------------------------------------------ units
    def stream_input(self, n, arg: _Sig, pw: int) -> tuple[str, str, str, str | None, bool]:
        """(valid, ready-wire-or-None, data, last, use_last) feeding a window unit; a FIFO when
        the producer cannot stall."""
        m = self.m
        if arg.ready is not None:
            self.host_ready_used = True
            return m.all(arg.valid), arg.ready, m.all(arg.data), m.all(arg.last), True
        nm = self.lname(n.id)
        fv = m.wire(f"{nm}_fifo_valid", 1, track=True)
        fd = m.wire(f"{nm}_fifo_data", pw, track=True)
        fr = m.wire(f"{nm}_fifo_ready", 1, track=True)
        fo = m.wire(f"{nm}_fifo_overflow", 1, track=True)
        ph = f"@@FIFO_AW_{nm}@@"
        self.fifos.append((nm, ph))
        m.line(f"hq_fifo #(.WIDTH({pw}), .AW({ph})) u_{nm}_fifo (.clk({m.all('clk')}), "
               f".rst({m.all('rst')}), .in_valid({m.all(arg.valid)}), .in_data({m.all(arg.data)}), "
               f".out_valid({fv}), .out_ready({m.all(fr)}), .out_data({fd}), .overflow({fo}));")
        self.errs.append(fo)
        return m.all(fv), fr, m.all(fd), "1'b0", False

    def conv(self, n, arg: _Sig):
        m = self.m
        if arg.domain != "stream":
            raise EmitError(f"{n.label()}: conv2d on a vector")
        a = n.attrs
        plan = self.lg.plan(n.id)
        cin, H, W = self.g.nodes[n.args[0]].shape
        K, P = a.weight.shape[2], a.padding
        w_in = arg.etype.width
        pw = cin * w_in
        nm = self.lname(n.id)
        self.stages.append(Stage("window", {"H": H, "W": W, "K": K, "P": P}, nm))
        valid, ready, data, last, use_last = self.stream_input(n, arg, pw)
        wv = m.wire(f"{nm}_win_valid", 1)
        wd = m.wire(f"{nm}_win", K * K * pw)
        we = m.wire(f"{nm}_win_err", 1)
        if use_last:
            self.errs.append(we)
        ready_conn = ready
        HP, WP = H + 2 * P, W + 2 * P
        m.line(f"hq_window #(.PW({pw}), .H({H}), .W({W}), .K({K}), .P({P}), "
               f".RW({_clog2(HP)}), .CW({_clog2(WP)}), .USE_LAST({int(use_last)})) "
               f"u_{nm}_window (.clk({m.all('clk')}), .rst({m.all('rst')}), .in_valid({valid}), "
               f".in_ready({ready_conn}), .in_data({data}), .in_last({last}), "
               f".win_valid({wv}), .win({wd}), .err({we}));")
        out_node = self.g.nodes[plan.out_node]
        in_off = []
        for c in range(cin):
            for t in range(K * K):
                in_off.append((t * cin + c) * w_in)
        rq = self.requant_spec(out_node) if plan.requant is not None else None
        mod, lat = self.add_layer(n.id, plan.cmvm, [arg.etype] * len(in_off), in_off,
                                  K * K * pw, out_node.type, rq, "conv2d")
        self.stages.append(Stage("delay", {"lat": lat}, nm))
        return self._inst_layer(nm, mod, m.all(wv), m.all(wd), a.weight.shape[0],
                                out_node.type, "stream"), plan.requant

    def _inst_layer(self, nm: str, mod: str, valid: str, data: str, n_out: int,
                    et: IntType, domain: str, time: int = 0) -> _Sig:
        m = self.m
        ov = m.wire(f"{nm}_valid", 1)
        od = m.wire(f"{nm}_data", n_out * et.width)
        m.line(f"{mod} u_{nm} (.clk({m.all('clk')}), .rst({m.all('rst')}), .in_valid({valid}), "
               f".x({data}), .out_valid({ov}), .y({od}));")
        return _Sig(ov, od, et, domain, n_out, time=time)

    def dense(self, n, arg: _Sig):
        if arg.domain != "vector":
            raise EmitError(f"{n.label()}: dense on a feature map (add FLATTEN)")
        plan = self.lg.plan(n.id)
        out_node = self.g.nodes[plan.out_node]
        w = arg.etype.width
        n_in = arg.elems
        rq = self.requant_spec(out_node) if plan.requant is not None else None
        mod, lat = self.add_layer(n.id, plan.cmvm, [arg.etype] * n_in,
                                  [i * w for i in range(n_in)], n_in * w, out_node.type, rq,
                                  "dense")
        nm = self.lname(n.id)
        return self._inst_layer(nm, mod, self.m.all(arg.valid), self.m.all(arg.data),
                                out_node.size, out_node.type, "vector", arg.time + lat), plan.requant

    def requant(self, n, arg: _Sig) -> _Sig:
        plan = self.lg.plan(n.id)
        elems = arg.elems
        a_node = self.g.nodes[n.args[0]]
        if plan is not None:
            cmvm = plan.cmvm
        else:  # no rounding constant: an identity product without adders
            cmvm = lower_cmvm(np.eye(elems, dtype=np.int64), [(a_node.lo, a_node.hi)] * elems,
                              max_carry=self.em.max_carry)
        w = arg.etype.width
        mod, lat = self.add_layer(n.id, cmvm, [arg.etype] * elems, [i * w for i in range(elems)],
                                  elems * w, n.type, self.requant_spec(n), "requant")
        nm = self.lname(n.id)
        if arg.domain == "stream":
            self.stages.append(Stage("delay", {"lat": lat, "n_host": self._host_n()}, nm))
        return self._inst_layer(nm, mod, self.m.all(arg.valid), self.m.all(arg.data), elems,
                                n.type, arg.domain, arg.time + lat)

    def _host_n(self) -> int:
        s = self.g.nodes[0].shape
        return s[1] * s[2] if len(s) == 3 else 1

    def pool(self, n, arg: _Sig) -> _Sig:
        m = self.m
        a = n.attrs
        if arg.domain != "stream" or a.kernel != 2 or a.stride != 2:
            raise EmitError(f"{n.label()}: only 2x2 / stride-2 max pooling of a "
                            "feature map")
        c, H, W = self.g.nodes[n.args[0]].shape
        nm = self.lname(n.id)
        self.stages.append(Stage("pool", {"H": H, "W": W}, nm))
        et = arg.etype
        ov = m.wire(f"{nm}_valid", 1)
        od = m.wire(f"{nm}_data", c * et.width)
        m.line(f"hq_maxpool2 #(.C({c}), .DW({et.width}), .H({H}), .W({W}), .RW({_clog2(H)}), "
               f".CW({_clog2(W)}), .SIGNED({int(et.signed)})) u_{nm} (.clk({m.all('clk')}), "
               f".rst({m.all('rst')}), .in_valid({m.all(arg.valid)}), .in_data({m.all(arg.data)}), "
               f".out_valid({ov}), .out_data({od}));")
        if arg.ready is not None:
            m.line("assign s_tready = 1'b1;")
            m.all(arg.last)
            self.host_ready_used = True
        return _Sig(ov, od, et, "stream", c)

    def flatten(self, n, arg: _Sig) -> _Sig:
        m = self.m
        if arg.domain == "vector":
            return arg
        c, H, W = self.g.nodes[n.args[0]].shape
        N = H * W
        nm = self.lname(n.id)
        self.stages.append(Stage("collect", {"N": N}, nm))
        et = arg.etype
        ov = m.wire(f"{nm}_valid", 1)
        od = m.wire(f"{nm}_data", N * c * et.width)
        m.line(f"hq_collect #(.C({c}), .DW({et.width}), .N({N}), .NW({_clog2(N)})) u_{nm} "
               f"(.clk({m.all('clk')}), .rst({m.all('rst')}), .in_valid({m.all(arg.valid)}), "
               f".in_data({m.all(arg.data)}), .out_valid({ov}), .out_data({od}));")
        if arg.ready is not None:
            m.line("assign s_tready = 1'b1;")
            m.all(arg.last)
            self.host_ready_used = True
        return _Sig(ov, od, et, "vector", N * c, time=0)

    def sign_bits(self, n, arg: _Sig) -> _Sig:
        m = self.m
        if arg.domain != "vector":
            raise EmitError(f"{n.label()}: sign bits of a feature map")
        nm = self.lname(n.id)
        et = arg.etype
        w = et.width
        bits = []
        for j in range(arg.elems):
            if et.signed and w == 1:
                bits.append("1'b0")
                m.sel(arg.data, j, j)
            elif et.signed:
                bits.append(f"(~{m.bit(arg.data, j * w + w - 1)} & "
                            f"(|{m.sel(arg.data, j * w + w - 2, j * w)}))")
            else:
                bits.append(f"(|{m.sel(arg.data, j * w + w - 1, j * w)})")
        od = m.reg(f"{nm}_data", arg.elems)
        ov = m.wire(f"{nm}_valid", 1)
        m.line(f"always @(posedge {m.all('clk')}) {od} <= "
               f"{{{', '.join(reversed(bits))}}};" if len(bits) > 1 else
               f"always @(posedge {m.all('clk')}) {od} <= {bits[0]};")
        m.line(f"hq_vdelay #(.DEPTH(1)) u_{nm}_valid (.clk({m.all('clk')}), .rst({m.all('rst')}), "
               f".d({m.all(arg.valid)}), .q({ov}));")
        return _Sig(ov, od, n.type, "vector", arg.elems, time=arg.time + 1)

    def hamming(self, n, arg: _Sig) -> _Sig:
        m = self.m
        cb = n.attrs.codebook
        K, L = cb.shape
        flat = "".join(str(int(cb[k, j])) for k in reversed(range(K)) for j in reversed(range(L)))
        nm = self.lname(n.id)
        ov = m.wire(f"{nm}_valid", 1)
        iw = n.type.width
        od = m.wire(f"{nm}_data", iw)
        m.line(f"hq_hamming #(.L({L}), .K({K}), .DW({(L).bit_length()}), .IW({iw}), "
               f".CB({K * L}'b{flat})) u_{nm} (.clk({m.all('clk')}), .rst({m.all('rst')}), "
               f".in_valid({m.all(arg.valid)}), .bits({m.all(arg.data)}), .out_valid({ov}), "
               f".cls({od}));")
        return _Sig(ov, od, n.type, "vector", 1, time=arg.time + 1)


__all__ = ["VerilogEmitter", "Design", "PRIMITIVES"]
