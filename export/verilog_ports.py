"""The Verilog top's ports and handshake: the port list, the input gating, the output queue
(``hq_outq``: AXI-Stream back-pressure on ``m_tready``), the top's header comment and the
port map of ``summary.json["ports"]``.

Handshake (both sides AXI-Stream: a beat moves in a cycle where ``tvalid && tready``):

* input: ``s_tready`` = the units' ready (stream mode: low at a window's padding steps;
  1 when no unit stalls the host) AND the output queue's ``credit``; the units see
  ``s_tvalid && credit`` as their input valid, so a credit stall is a host pause to them
  (every unit tolerates one at any beat: the windows and the pacer wait at a real position,
  the valid-only units just see no token).  Credit only ever drops at a result's first beat
  (an image's first pixel; every vector in parallel mode).
* output: ``m_tvalid`` does not depend on ``m_tready``; while ``m_tvalid && !m_tready`` it
  stays high and the ``m_<name>`` ports do not change.

The queue holds ``2**AW`` results, ``AW`` from the cycle model: R = the results still in
flight at a result's first beat (:func:`heatq_export.verilog_schedule.results_in_flight`,
``ceil(L / II)`` or so for latency L, II cycles per result), entries = the smallest power of
two >= max(2, R + 1).  With ``m_tready`` held 1 the credit never drops, nothing waits in
the queue (a result passes in the cycle it is computed), so II and latency are the cycle
model's.
"""

from __future__ import annotations

from typing import Any

from heatq.ir import IntGraph

from .rtl import netlist as nl
from .verilog_schedule import results_in_flight
from .verilog_units import Flow, clog2, fifo_entries, ident

HANDSHAKE = ("AXI-Stream on both sides: a beat moves in a cycle where tvalid && tready. "
             "s_tready is low while the output queue has no credit (only at a result's first "
             "beat) and, in stream mode, at the first window's padding steps; m_tvalid does "
             "not wait for m_tready, and while m_tvalid && !m_tready it stays high and the "
             "m_<output> ports hold their values.")


def out_port_names(g: IntGraph) -> list[str]:
    """``m_<output name>`` per graph output (``m_out<k>`` when unnamed or taken)."""
    names: list[str] = []
    for k, o in enumerate(g.outputs):
        n = g.nodes[o]
        base = f"m_{ident(n.name)}" if n.name else f"m_out{k}"
        if base in names or base in ("m_tvalid", "m_tready"):
            base = f"m_out{k}"
        names.append(base)
    return names


def top_ports(m: nl.Module, g: IntGraph) -> tuple[dict[str, nl.Signal], Flow, list]:
    """The top's ports, in order ``clk, rst, s_tdata, s_tvalid, s_tready, [s_tlast,]
    m_tvalid, m_tready, m_<output>..., err``: (the named signals, the input flow,
    [(port, node id)]).  The flow's valid is ``s_tvalid`` gated by the output queue's credit
    (``hq_s_credit``); in stream mode its ready (``hq_s_ready``) is what the units drive."""
    inp = g.nodes[0]
    stream = len(inp.shape) == 3
    sig = {"clk": m.input("clk", 1), "rst": m.input("rst", 1)}
    elems = inp.shape[0] if stream else inp.size
    sig["s_tdata"] = m.input("s_tdata", elems * inp.type.width)
    sig["s_tvalid"] = m.input("s_tvalid", 1)
    sig["s_tready"] = m.output("s_tready", 1)
    if stream:
        sig["s_tlast"] = m.input("s_tlast", 1)
    sig["m_tvalid"] = m.output("m_tvalid", 1)
    sig["m_tready"] = m.input("m_tready", 1)
    outs = []
    for pname, o in zip(out_port_names(g), g.outputs):
        n = g.nodes[o]
        outs.append((m.output(pname, n.size * n.type.width), o))
    sig["err"] = m.output("err", 1)
    sig["s_credit"] = m.signal("hq_s_credit", 1)
    valid = m.signal("hq_s_valid", 1)
    m.assign(valid, nl.And(sig["s_tvalid"], sig["s_credit"]))
    if stream:
        sig["s_ready_u"] = m.signal("hq_s_ready", 1)
        src = Flow(valid, sig["s_tdata"], inp.type, "stream", elems,
                   ready=sig["s_ready_u"], last=sig["s_tlast"])
    else:
        src = Flow(valid, sig["s_tdata"], inp.type, "vector", elems)
    return sig, src, outs


def handshake(m: nl.Module, sig, stream: bool, ready_used: bool) -> None:
    """``s_tready``: the units' ready (stream mode; 1 when no unit stalls the host) and the
    output queue's credit."""
    if stream and not ready_used:
        m.assign(sig["s_ready_u"], nl.Const(1, 1))
    m.assign(sig["s_tready"], nl.And(sig["s_ready_u"], sig["s_credit"]) if stream
             else sig["s_credit"])


def out_queue(m: nl.Module, tb, g: IntGraph, sig, valid: nl.Value, aligned: list[nl.Value],
              ports: list[nl.Signal], t_max: int) -> dict[str, int]:
    """``hq_outq`` between the time-aligned results (``aligned``, one per port, valid with
    ``valid``) and the ports; its overflow joins ``err`` (never, by the credit).  Returns
    its figures: entries, width (bits per result), bits, results_in_flight, beats_per_result."""
    inp = g.nodes[0]
    n_beats = inp.shape[1] * inp.shape[2] if len(inp.shape) == 3 else 1
    in_flight = results_in_flight(tb.stages, t_max, tb.vec_origin)
    entries = fifo_entries(in_flight - 1)  # the smallest power of two >= max(2, R + 1)
    width = sum(v.width for v in aligned)
    data = m.signal("hq_res_data", width)
    m.assign(data, nl.cat(*aligned))
    single = len(ports) == 1
    q = ports[0] if single else m.signal("hq_res_q", width)
    beat, ovf = m.signal("hq_s_beat", 1), m.signal("hq_res_overflow", 1)
    m.assign(beat, nl.And(sig["s_tvalid"], sig["s_tready"]))
    m.instance("hq_outq", "u_outq", [("WIDTH", width), ("AW", clog2(entries)),
                                      ("N", n_beats), ("NW", clog2(n_beats))], [
        nl.Port("clk", sig["clk"]), nl.Port("rst", sig["rst"]), nl.Port("beat", beat),
        nl.Port("credit", sig["s_credit"], True), nl.Port("in_valid", valid),
        nl.Port("in_data", data), nl.Port("m_tvalid", sig["m_tvalid"], True),
        nl.Port("m_tready", sig["m_tready"]), nl.Port("m_tdata", q, True),
        nl.Port("overflow", ovf, True)])
    tb.errs.append(ovf)
    if not single:
        lo = 0
        for p in ports:
            m.assign(p, nl.bits(q, lo + p.width - 1, lo))
            lo += p.width
    return {"entries": entries, "width": width, "bits": entries * width,
            "results_in_flight": in_flight, "beats_per_result": n_beats}


def _port_desc(p: nl.Signal) -> str:
    return p.name if p.width == 1 else f"{p.name}[{p.width - 1}:0]"


def top_header(top: str, mode: str, sched, sig, outs, queue) -> list[str]:
    """The top module's header comment: ports, handshake, output queue, latency and II."""
    unit = "image" if mode == "stream" else "vector"
    s_side = [sig["s_tdata"], sig["s_tvalid"], sig["s_tready"]]
    if mode == "stream":
        s_side.append(sig["s_tlast"])
    m_side = [sig["m_tvalid"], sig["m_tready"]] + [p for p, _ in outs]
    return [
        f"{top}: heatq design ({mode} mode), generated from an IntGraph.",
        "Ports: clk, rst (sync, active high); "
        + ", ".join(map(_port_desc, s_side))
        + (" (one pixel per beat, s_tlast on an image's last pixel)" if mode == "stream"
           else " (one vector per beat)")
        + "; " + ", ".join(map(_port_desc, m_side)) + " (one result per beat); err (sticky).",
        "Handshake: " + HANDSHAKE,
        f"Output queue (hq_outq): {queue['entries']} results x {queue['width']} bits = "
        f"{queue['bits']} bits ({queue['results_in_flight']} in flight at a result's first "
        "beat in the cycle model, plus one, rounded up to a power of two).",
        f"Latency: {sched['latency']} cycles from the first input beat to m_tvalid; "
        f"II: {sched['ii']} cycles per {unit} (with m_tready held 1 and the host streaming "
        "back to back).",
    ]


def port_map(m: nl.Module, mode: str, g: IntGraph, src: Flow, outs, queue) -> dict[str, Any]:
    """``summary.json["ports"]``: what the benches and the bundle read."""
    inp = g.nodes[0]
    return {
        "mode": mode,
        "clock": "clk", "reset": "rst (synchronous, active high)",
        "port_list": [{"name": p.name, "dir": d, "width": p.width} for d, p in m.ports],
        "handshake": HANDSHAKE,
        "output_queue": dict(queue),
        "s_tdata": {"width": src.data.width, "elem_width": inp.type.width,
                    "elem_signed": inp.type.signed, "elems": src.elems},
        "outputs": [{"port": port.name, "node": o, "name": g.nodes[o].name,
                     "elems": g.nodes[o].size, "elem_width": g.nodes[o].type.width,
                     "elem_signed": g.nodes[o].type.signed} for port, o in outs],
    }


__all__ = ["HANDSHAKE", "handshake", "out_port_names", "out_queue", "port_map", "top_header",
           "top_ports"]
