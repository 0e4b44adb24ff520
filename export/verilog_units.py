"""The units of the top module, one per op of the lowered graph, built into the top's netlist.

A :class:`Flow` is a value travelling between units: valid + data, element type and layout
(``stream``: one pixel of ``elems`` channels per token; ``vector``: one whole vector).  Every
unit appends its cells to the top module, its stages to the cycle model
(:mod:`heatq_export.verilog_schedule`) and its files (layer modules) to ``files``.

Top-level names: ``<layer>_valid`` / ``<layer>_data`` (a unit's output), ``<layer>_win*`` (its
window unit), ``<layer>_fifo_*`` (the FIFO in front of it), instances ``u_<layer>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from heatq.ir import IntGraph, IntType, Op

from .base import EmitError
from .rtl import netlist as nl
from .rtl.requant import threshold_cells
from .rtl.verilog import print_module
from .verilog_info import layer_entry, layer_header, layer_kind, layer_tokens
from .verilog_layers import LOGIC_ADD, RequantSpec, layer_netlist, resolve_arith
from .fold import FoldChoice, folded_netlist
from .verilog_schedule import Stage, simulate


def clog2(n: int) -> int:
    return max(1, (n - 1).bit_length())


def ident(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", s)
    return s if s and not s[0].isdigit() else "n" + s


def refuse(n, why: str) -> EmitError:
    """The one-line error for a node the Verilog target has no unit for."""
    return EmitError(f"verilog: op {n.op.value} ({n.label()}): {why}")


def fifo_entries(occupancy: int) -> int:
    """FIFO entries for a peak occupancy (two spare), a power of two."""
    return 1 << clog2(max(2, occupancy + 2))


@dataclass
class Flow:
    valid: nl.Signal
    data: nl.Signal
    etype: IntType
    domain: str  # 'stream' or 'vector'
    elems: int  # per pixel (stream) or per vector
    ready: nl.Signal | None = None  # a stream source that can stall (the host port)
    last: nl.Signal | None = None
    time: int = 0  # vector domain: cycles after the vector domain's start
    chan: tuple[int, ...] | None = None  # CONCAT: logical element -> physical element of data
    stage: Stage | None = None  # stream domain: the cycle-model stage of its tokens (None: host)


def layer_name(n, rq=None) -> str:
    """A unit's name: its node's name; for a CMVM without the suffix the lowering pass
    gives one that carries a folded constant (``.rounded``) or stands in front of a
    REQUANT (``.pre``, named after the REQUANT; an unnamed one: the REQUANT's name)."""
    name = re.sub(r"\.(rounded|pre)$", "", n.name)
    if not name and rq is not None and n.op.value == "cmvm" and n.attrs.layout == "pointwise":
        name = rq.name
    return ident(name) if name else f"node{n.id}"


class TopBuilder:
    """Builds the top module's units in graph order; see the module docstring."""

    def __init__(self, top: str, graph: IntGraph, m: nl.Module, clk: nl.Signal, rst: nl.Signal,
                 arith: str = "adders"):
        self.top, self.g, self.m, self.clk, self.rst = top, graph, m, clk, rst
        self.arith = arith
        self.files: dict[str, str] = {}
        self.stages: list[Stage] = []
        self.layers: dict[str, dict] = {}
        self.adder_graphs: dict[str, object] = {}
        self.errs: list[nl.Signal] = []
        self.host_ready_used = False
        self.folds: dict[str, FoldChoice] = {}  # layer -> design (--fold auto: plan_folds)
        self.fold_ii = 1  # the stream's II the plan was made for
        self._origin_memo: dict[int, frozenset[int]] = {}
        self.vec_origin: Stage | None = None  # the stage the vector domain's times count from

    # ------------------------------------------------------------------ helpers
    def lname(self, n, rq=None) -> str:
        """A unit's name (:func:`layer_name`)."""
        return layer_name(n, rq)

    def wire(self, name: str, width: int) -> nl.Signal:
        return self.m.signal(name, width)

    def inst(self, module: str, name: str, params, ports) -> None:
        self.m.instance(module, name, params, [nl.Port(k, v, out) for k, v, out in ports])

    def consume_host(self, arg: Flow) -> None:
        """A valid-only unit reading the host port directly: the host never stalls."""
        if arg.ready is not None:
            self.m.assign(arg.ready, nl.Const(1, 1))
            self.host_ready_used = True

    def _n_host(self) -> int:
        s = self.g.nodes[0].shape
        return s[1] * s[2] if len(s) == 3 else 1

    def stage(self, kind: str, params: dict, name: str, arg: Flow, srcs: tuple = ()) -> Stage:
        """Append a cycle-model stage reading ``arg``'s tokens (and ``srcs``: a join's)."""
        st = Stage(kind, params, name, arg.stage, srcs)
        self.stages.append(st)
        return st

    def vector_start(self, st: Stage, n) -> int:
        """The vector-domain time (cycles after the first collector's output) of a vector
        that collector stage ``st`` emits; a collector whose offset to the first is not the
        same for every image is refused."""
        if self.vec_origin is None:
            self.vec_origin = st
            return 0
        t = simulate(self.stages, 0, n_img=8)["times"]
        d = {b - a for a, b in zip(t[self.vec_origin], t[st])}
        if len(d) != 1:
            raise refuse(n, "its vector is not emitted at a fixed offset from the first "
                         "collected vector's (no common time)")
        return d.pop()

    # ------------------------------------------------------------------ layers
    def cmvm(self, n, rq, arg: Flow) -> Flow:
        """CMVM node ``n`` (and the REQUANT ``rq`` after it, or None) as one layer module:
        today's parallel one, or the folded design ``self.folds`` gives it."""
        a = n.attrs
        nm = self.lname(n, rq)
        out = rq if rq is not None else n
        w = arg.etype.width
        fc = self.folds.get(nm)
        if a.layout == "conv2d":
            if arg.domain != "stream":
                raise refuse(n, "a conv2d window over a vector")
            cin, ch, K = arg.elems, arg.chan or range(arg.elems), a.kernel
            offs = [(t * cin + ch[c]) * w for c in range(len(ch)) for t in range(K * K)]
            names = [f"x_c{c}_k{t}" for c in range(len(ch)) for t in range(K * K)]
            valid, data, wst = self.window(n, nm, arg, cin * w, fc.gap if fc else 1)
            nx = K * K * cin * w
        else:
            if a.layout == "dense" and arg.domain != "vector":
                raise refuse(n, "dense on a feature map (add FLATTEN)")
            tag = "c" if arg.domain == "stream" else "e"
            ch = arg.chan or range(arg.elems)
            offs, names = [c * w for c in ch], [f"x_{tag}{i}" for i in range(len(ch))]
            valid, data, nx = arg.valid, arg.data, arg.elems * w
            wst = None
        g = a.graph
        spec = None if rq is None else RequantSpec(rq.attrs.shift, rq.attrs.lo, rq.attrs.hi,
                                                   rq.attrs.overflow, rq.attrs.rounding)
        mod = f"{self.top}_{nm}"
        parallel = fc is None or fc.design == "parallel"
        lat = g.latency + 1 if parallel else fc.cycles + 1
        src = self.g.nodes[n.args[0]]
        tokens = layer_tokens(n, src, arg.domain)
        busy = None if fc is None else (tokens, self.fold_ii)
        header = layer_header(mod, n, rq, src, arg.etype, out, lat, fc, busy)
        if parallel:
            net, lat = layer_netlist(mod, g, [arg.etype] * g.n_in, offs, nx, out.type, spec,
                                     header, logic_add=LOGIC_ADD, in_names=names,
                                     arith=self.arith)
        else:
            net, lat, _ = folded_netlist(fc, mod, g, arg.etype, offs, nx, out.type, spec,
                                         header, self.arith, names)
            # the builder knows its latency (an MVAU's input stage adds one): restate it,
            # keeping the lines the builder appended
            net.header = layer_header(mod, n, rq, src, arg.etype, out, lat, fc, busy) + \
                net.header[len(header):]
        self.files[f"{mod}.v"] = print_module(net)
        self.adder_graphs[nm] = g
        self.layers[nm] = layer_entry(mod, layer_kind(n, rq), g, lat, fc, tokens)
        if parallel:
            self.layers[nm]["arith"] = resolve_arith(g, self.arith)
        st = None
        if arg.domain == "stream":
            p = {"lat": lat} if a.layout == "conv2d" else {"lat": lat, "n_host": self._n_host()}
            src = arg if wst is None else Flow(valid, data, arg.etype, "stream", 0, stage=wst)
            st = self.stage("delay", p, nm, src)
        n_out = len(g.outputs)
        ov, od = self.wire(f"{nm}_valid", 1), self.wire(f"{nm}_data", n_out * out.type.width)
        self.inst(mod, f"u_{nm}", [], [("clk", self.clk, False), ("rst", self.rst, False),
                                       ("in_valid", valid, False), ("x", data, False),
                                       ("out_valid", ov, True), ("y", od, True)])
        time = arg.time + lat if arg.domain == "vector" else 0
        return Flow(ov, od, out.type, arg.domain, n_out, time=time, stage=st)

    # ------------------------------------------------------------------ stream units
    def window(self, n, nm: str, arg: Flow, pw: int, gap: int = 1
               ) -> tuple[nl.Signal, nl.Signal, Stage]:
        """The 'same'-padded window unit in front of conv layer ``n`` named ``nm`` (and a FIFO
        when the producer cannot stall), stepping at most every ``gap`` cycles, and for a
        stride ``S > 1`` the filter (``hq_stride``) that keeps the windows on the stride
        grid: returns (window valid, window data, its cycle-model stage)."""
        _, H, W = self.g.nodes[n.args[0]].shape
        K, P, S = n.attrs.kernel, n.attrs.padding, n.attrs.stride
        sp = {"S": S} if S != 1 else {}
        st = self.stage("window", {"H": H, "W": W, "K": K, "P": P, **_gap(gap, K), **sp}, nm,
                        arg)
        if arg.ready is not None:
            self.host_ready_used = True
            valid, ready, data, last, use_last = arg.valid, arg.ready, arg.data, arg.last, True
        else:
            valid, ready, data = self.fifo(nm, arg, pw, n)
            last, use_last = nl.Const(1, 0), False
        wv, wd = self.wire(f"{nm}_win_valid", 1), self.wire(f"{nm}_win", K * K * pw)
        we = self.wire(f"{nm}_win_err", 1)
        if use_last:
            self.errs.append(we)
        params = [("PW", pw), ("H", H), ("W", W), ("K", K), ("P", P), ("RW", clog2(H + 2 * P)),
                  ("CW", clog2(W + 2 * P)), ("USE_LAST", int(use_last))] + _gap_params(gap, K)
        self.inst("hq_window", f"u_{nm}_window", params, [
            ("clk", self.clk, False), ("rst", self.rst, False), ("in_valid", valid, False),
            ("in_ready", ready, True), ("in_data", data, False), ("in_last", last, False),
            ("win_valid", wv, True), ("win", wd, True), ("err", we, True)])
        if S != 1:
            HO, WO = H + 2 * P - K + 1, W + 2 * P - K + 1
            sv = self.wire(f"{nm}_stride_valid", 1)
            self.inst("hq_stride", f"u_{nm}_stride", [
                ("HO", HO), ("WO", WO), ("S", S), ("RW", clog2(HO)), ("CW", clog2(WO)),
                ("SW", clog2(S))], [
                ("clk", self.clk, False), ("rst", self.rst, False), ("in_valid", wv, False),
                ("out_valid", sv, True)])
            wv = sv
        return wv, wd, st

    def pace(self, src: Flow, n) -> Flow:
        """Pace the host to the walk of the window of conv CMVM ``n`` (fed from the host
        through valid-only elementwise units): ``s_tready`` high only at real positions."""
        _, H, W = self.g.nodes[0].shape
        P = n.attrs.padding
        fc = self.folds.get(self.lname(n))
        gap = fc.gap if fc else 1
        K = n.attrs.kernel
        st = self.stage("pace", {"H": H, "W": W, "P": P, **_gap(gap, K)}, "pace", src)
        err, pv = self.wire("pace_err", 1), self.wire("pace_valid", 1)
        self.errs.append(err)
        self.inst("hq_pace", "u_pace", [("H", H), ("W", W), ("P", P), ("RW", clog2(H + 2 * P)),
                                        ("CW", clog2(W + 2 * P)), ("USE_LAST", 1)]
                  + _gap_params(gap, K), [
            ("clk", self.clk, False), ("rst", self.rst, False), ("in_valid", src.valid, False),
            ("in_ready", src.ready, True), ("in_last", src.last, False), ("err", err, True)])
        self.m.assign(pv, nl.And(src.valid, src.ready))
        self.host_ready_used = True
        return Flow(pv, src.data, src.etype, "stream", src.elems, stage=st)

    def fifo(self, nm: str, arg: Flow, pw: int, n=None):
        """A FIFO sized by the cycle model of the stages so far (this window's included); a
        FIFO whose occupancy grows from image to image is refused."""
        occupancy = simulate(self.stages, 0)["fifo_depths"][nm]
        if simulate(self.stages, 0, n_img=8)["fifo_depths"][nm] != occupancy:
            raise refuse(n, "its window walks the padded raster slower than the stream "
                         "feeding it delivers images: the FIFO in front would overflow")
        fv, fd = self.wire(f"{nm}_fifo_valid", 1), self.wire(f"{nm}_fifo_data", pw)
        fr, fo = self.wire(f"{nm}_fifo_ready", 1), self.wire(f"{nm}_fifo_overflow", 1)
        aw = clog2(fifo_entries(occupancy))
        self.inst("hq_fifo", f"u_{nm}_fifo", [("WIDTH", pw), ("AW", aw)], [
            ("clk", self.clk, False), ("rst", self.rst, False), ("in_valid", arg.valid, False),
            ("in_data", arg.data, False), ("out_valid", fv, True), ("out_ready", fr, False),
            ("out_data", fd, True), ("overflow", fo, True)])
        self.errs.append(fo)
        return fv, fr, fd

    def pool(self, n, arg: Flow) -> Flow:
        a = n.attrs
        if arg.domain != "stream" or a.kernel != 2 or a.stride != 2:
            raise refuse(n, "only 2x2 / stride-2 max pooling of a feature map")
        c, H, W = self.g.nodes[n.args[0]].shape
        nm = self.lname(n)
        st = self.stage("pool", {"H": H, "W": W}, nm, arg)
        et = arg.etype
        ov, od = self.wire(f"{nm}_valid", 1), self.wire(f"{nm}_data", c * et.width)
        params = [("C", c), ("DW", et.width), ("H", H), ("W", W), ("RW", clog2(H)),
                  ("CW", clog2(W)), ("SIGNED", int(et.signed))]
        self.inst("hq_maxpool2", f"u_{nm}", params, [
            ("clk", self.clk, False), ("rst", self.rst, False), ("in_valid", arg.valid, False),
            ("in_data", arg.data, False), ("out_valid", ov, True), ("out_data", od, True)])
        self.consume_host(arg)
        return Flow(ov, od, et, "stream", c, stage=st)

    def flatten(self, n, arg: Flow) -> Flow:
        if arg.domain == "vector":
            return arg
        c, H, W = self.g.nodes[n.args[0]].shape
        N = H * W
        nm = self.lname(n)
        st = self.stage("collect", {"N": N}, nm, arg)
        et = arg.etype
        ov, od = self.wire(f"{nm}_valid", 1), self.wire(f"{nm}_data", N * c * et.width)
        self.inst("hq_collect", f"u_{nm}", [("C", c), ("DW", et.width), ("N", N),
                                            ("NW", clog2(N))], [
            ("clk", self.clk, False), ("rst", self.rst, False), ("in_valid", arg.valid, False),
            ("in_data", arg.data, False), ("out_valid", ov, True), ("out_data", od, True)])
        self.consume_host(arg)
        return Flow(ov, od, et, "vector", N * c, time=self.vector_start(st, n))

    # ------------------------------------------------------------------ registered elementwise
    def _registered(self, n, arg: Flow, elems: list[nl.Value], et: IntType) -> Flow:
        """``<name>_data <= {elems}`` one cycle after ``arg``; valid delayed to match."""
        nm = self.lname(n)
        od = self.wire(f"{nm}_data", sum(e.width for e in elems))
        ov = self.wire(f"{nm}_valid", 1)
        self.m.reg(od, nl.cat(*elems), self.clk)
        self.inst("hq_vdelay", f"u_{nm}_valid", [("DEPTH", 1)], [
            ("clk", self.clk, False), ("rst", self.rst, False), ("d", arg.valid, False),
            ("q", ov, True)])
        st = None
        if arg.domain == "stream":
            self.consume_host(arg)
            st = self.stage("delay", {"lat": 1, "n_host": self._n_host()}, nm, arg)
        return Flow(ov, od, et, arg.domain, len(elems), time=arg.time + 1, stage=st)

    def sign_bits(self, n, arg: Flow) -> Flow:
        """``v > 0`` per element: not the sign bit and some other bit set."""
        if arg.domain != "vector":
            raise refuse(n, "sign bits of a feature map")
        w, d = arg.etype.width, arg.data
        bits: list[nl.Value] = []
        for j in range(arg.elems):
            if arg.etype.signed and w == 1:
                bits.append(nl.Const(1, 0))  # -1..0: never positive
            elif arg.etype.signed:
                bits.append(nl.And(nl.Not(nl.bit(d, j * w + w - 1)),
                                   nl.Reduce("|", nl.bits(d, j * w + w - 2, j * w))))
            else:
                bits.append(nl.Reduce("|", nl.bits(d, j * w + w - 1, j * w)))
        return self._registered(n, arg, bits, n.type)

    def threshold(self, n, arg: Flow) -> Flow:
        """Per element ``j`` (channel ``j`` of a pixel, or element ``j`` of a vector): the count
        of row ``j``'s thresholds at or below it."""
        t = n.attrs.thresholds
        src = self.g.nodes[n.args[0]]
        w, d = arg.etype.width, arg.data
        elems = [threshold_cells(nl.bits(d, j * w + w - 1, j * w), arg.etype.signed, t[j],
                                 src.lo, src.hi, n.type) for j in range(arg.elems)]
        return self._registered(n, arg, elems, n.type)

    def bit(self, n, arg: Flow) -> Flow:
        """Bit ``n.attrs.bit`` of each element's two's-complement bits."""
        w, b = arg.etype.width, n.attrs.bit
        return self._registered(n, arg, [nl.bit(arg.data, j * w + b) for j in range(arg.elems)],
                                n.type)

    def add(self, n, args: list[Flow]) -> Flow:
        """ADD of vectors (streams: :func:`heatq_export.verilog_stream.join`): each argument delayed (``hq_delay``) to the latest one's time, then
        per element ``sum_i x_i << s_i`` modulo ``2**width`` (the node's width), registered.
        Exact: the sum lies in the node's type, so its low ``width`` bits are the result."""
        if any(f.domain != "vector" for f in args):  # streams: verilog_stream.join
            raise refuse(n, "an add of a feature map and a vector")
        if len({self._origins(a) for a in n.args}) > 1:
            raise refuse(n, "arguments collected from different feature maps (no common time)")
        nm, late = self.lname(n), max(args, key=lambda f: f.time)
        data: dict[int, nl.Signal] = {}
        for k, (a, f) in enumerate(zip(n.args, args)):
            if a in data or f.time == late.time:
                data.setdefault(a, f.data)
                continue
            data[a] = self.wire(f"{nm}_arg{k}", f.data.width)
            self.inst("hq_delay", f"u_{nm}_arg{k}",
                      [("WIDTH", f.data.width), ("DEPTH", late.time - f.time)],
                      [("clk", self.clk, False), ("d", f.data, False), ("q", data[a], True)])
        W, elems = n.type.width, []
        for j in range(n.size):
            terms = [t for a, f, s in zip(n.args, args, n.attrs.shifts)
                     if (t := _term(data[a], j, f.etype, s, W)) is not None]
            acc: nl.Value = terms[0] if terms else nl.Const(W, 0)
            for t in terms[1:]:
                acc = nl.Add(acc, t)
            elems.append(acc)
        return self._registered(n, late, elems, n.type)

    def _origins(self, nid: int) -> frozenset[int]:
        """The FLATTENs of feature maps a vector node's value passes (its time base)."""
        if nid not in self._origin_memo:
            n = self.g.nodes[nid]
            if n.op is Op.FLATTEN and len(self.g.nodes[n.args[0]].shape) == 3:
                self._origin_memo[nid] = frozenset([nid])
            else:
                self._origin_memo[nid] = frozenset().union(*map(self._origins, n.args))
        return self._origin_memo[nid]

    def hamming(self, n, arg: Flow) -> Flow:
        """``hq_hamming``: the class of the nearest codeword (XOR + popcount + argmin, ties
        to the lowest index), registered."""
        cb = n.attrs.codebook
        K, L = cb.shape
        flat = sum(int(cb[k, j]) << (k * L + j) for k in range(K) for j in range(L))
        params = [("L", L), ("K", K), ("DW", L.bit_length()), ("IW", n.type.width),
                  ("CB", nl.Const(K * L, flat, "b"))]
        return self._class_unit(n, arg, "hq_hamming", params, "bits", "hamming decode")

    def argmax(self, n, arg: Flow) -> Flow:
        """``hq_argmax``: the first index of the largest of the vector's ``K`` elements
        (``W`` bits each, compared signed when the argument's type is signed), registered."""
        params = [("K", arg.elems), ("W", arg.etype.width), ("SIGNED", int(arg.etype.signed)),
                  ("IW", n.type.width)]
        return self._class_unit(n, arg, "hq_argmax", params, "x", "argmax")

    def _class_unit(self, n, arg: Flow, module: str, params: list, port: str,
                    what: str) -> Flow:
        """One instance of a class-index primitive (``module``: clk, rst, in_valid, the vector
        on ``port``, out_valid, cls) reading the whole vector ``arg``; one cycle later."""
        if arg.domain != "vector":
            raise refuse(n, f"{what} of a feature map")
        nm = self.lname(n)
        ov, od = self.wire(f"{nm}_valid", 1), self.wire(f"{nm}_data", n.type.width)
        self.inst(module, f"u_{nm}", params, [
            ("clk", self.clk, False), ("rst", self.rst, False), ("in_valid", arg.valid, False),
            (port, arg.data, False), ("out_valid", ov, True), ("cls", od, True)])
        return Flow(ov, od, n.type, "vector", 1, time=arg.time + 1)


def _term(d: nl.Signal, j: int, et: IntType, s: int, width: int) -> nl.Value | None:
    """Element ``j`` of ``d`` (elements of type ``et``) shifted left by ``s``, as its low
    ``width`` bits (sign- or zero-extended); None when ``s >= width`` (it adds 0 mod 2**width)."""
    if s >= width:
        return None
    w = et.width
    keep = min(w, width - s)
    parts: list[nl.Value] = [nl.Const(s, 0)] if s else []
    parts.append(nl.bits(d, j * w + keep - 1, j * w))
    ext = width - s - keep
    if ext:
        msb = nl.bit(d, j * w + w - 1)
        parts.append((nl.Repl(msb, ext) if ext > 1 else msb) if et.signed else nl.Const(ext, 0))
    return nl.cat(*parts)


def _gap(gap: int, K: int) -> dict[str, int]:
    """A window stage's cycle-model parameters for step gap ``gap`` before the windows of a
    ``K x K`` kernel (none for gap 1)."""
    return {"G": gap, "GK": K - 1} if gap != 1 else {}


def _gap_params(gap: int, K: int) -> list[tuple[str, int]]:
    """``hq_raster``'s GAP / GW / GK parameters, only when ``gap != 1`` (the unfolded RTL
    unchanged)."""
    return [("GAP", gap), ("GW", clog2(gap)), ("GK", K - 1)] if gap != 1 else []


__all__ = ["Flow", "TopBuilder", "clog2", "ident", "fifo_entries", "refuse"]
