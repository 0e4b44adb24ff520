"""Cycle model of the streaming design: token times through every stage, FIFO depths,
latency and initiation interval.

The model follows the RTL's rules exactly (the cocotb bench checks the measured numbers
against it):

* a window unit walks the padded raster one position per cycle; with a step gap ``G``
  (params ``G``, ``GK``: a folded layer's cycles per position, its window's ``K-1``) a step
  from a position with row, col >= ``GK`` (one that completes a window) comes at most ``G``
  cycles after the previous such step (a pacer, ``hq_pace``, walks the same way at the host
  port); a real position waits
  for its pixel (from the host: always there when the host streams back to back; from a
  FIFO: one cycle after the producer's valid cycle) and then steps at once; the window is
  valid the cycle after the step of padded position (r, c) with r, c >= K-1;
* a strided window (param ``S``) hands on only the windows on the stride grid (``hq_stride``:
  window row and column multiples of ``S``), in the cycle the window unit makes them;
* a layer module adds its latency; a 2x2 pool emits one cycle after each odd-row,
  odd-column token; a flatten collector (and a global-average-pool accumulator) emits one
  cycle after an image's last token;
* a join (the residual ADD of two streams of one raster) emits element ``k`` one cycle after
  the latest argument's element ``k``; every earlier argument waits in a FIFO (its depth:
  :func:`_fifo_depth` of its arrivals against the latest argument's);
* the vector part is a fixed-latency pipeline.

The stages form a graph: each reads ``src`` (another stage, or the host when None; a join
also ``srcs``), so one stream may feed several stages (a window and a join FIFO).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Stage:
    """One stream stage.  kind: 'window' (params H, W, K, P, optional G / GK: the step gap,
    optional S: the stride), 'pace' (params H, W, P, optional G / GK: the host
    accepts a pixel only where a window's walk of that raster is at a real position), 'delay'
    (params lat, n_host), 'pool' (params H, W), 'collect' (params N), 'join' (params n_host, args: the FIFO names' argument indices).
    ``src``: the stage whose tokens it reads (None: the host; ``PREV``, the default: the
    stage before it in the list, the first reads the host: a chain); ``srcs``: a join's
    earlier arguments (each through a FIFO)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    src: "Stage | str | None" = "prev"
    srcs: tuple = ()


PREV = "prev"  # Stage.src: the previous stage of the list


def _window(times: list[int] | None, H: int, W: int, K: int, P: int, n_img: int,
            gap: int = 1, gk: int = 0, stride: int = 1):
    """Returns (window valid times, step times of real positions).  ``gap``: a step from a
    gapped position (row, col >= ``gk``) at most every ``gap`` cycles (``hq_raster`` GAP /
    GK); the other steps at once.  ``stride``: only the windows whose row and column
    (``r - K + 1``, ``c - K + 1``) are multiples of it are handed on."""
    HP, WP = H + 2 * P, W + 2 * P
    t = -1
    k = 0
    last: int | None = None  # the last gapped step
    out, pops = [], []
    for _img in range(n_img):
        for r in range(HP):
            for c in range(WP):
                real = P <= r < P + H and P <= c < P + W
                t = t + 1
                if real and times is not None:
                    t = max(t, times[k] + 1)
                if gap > 1 and r >= gk and c >= gk:
                    if last is not None:
                        t = max(t, last + gap)
                    last = t
                if real:
                    pops.append(t)
                    k += 1
                if r >= K - 1 and c >= K - 1 and (r - K + 1) % stride == 0 \
                        and (c - K + 1) % stride == 0:
                    out.append(t + 1)
    return out, pops


def walk_ii(H: int, W: int, K: int, P: int, gap: int = 1) -> int:
    """Cycles per image of a ``K x K`` window's walk of the padded raster when no pixel is
    waited for, with step gap ``gap`` before each window (``GK = K - 1``)."""
    out, _ = _window(None, H, W, K, P, 3, gap, K - 1)
    n = len(out) // 3
    return out[2 * n] - out[n]


def max_gap(H: int, W: int, K: int, P: int, ii: int) -> int:
    """The largest step gap whose walk (:func:`walk_ii`) takes at most ``ii`` cycles per image
    (0 when even gap 1 does not)."""
    if walk_ii(H, W, K, P, 1) > ii:
        return 0
    lo, hi = 1, max(1, ii)
    while lo < hi:  # walk_ii is non-decreasing in the gap
        mid = (lo + hi + 1) // 2
        if walk_ii(H, W, K, P, mid) <= ii:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fifo_depth(pushes: list[int], pops: list[int]) -> int:
    """Largest FIFO occupancy seen by a push (pops in the same cycle do not help)."""
    need, j = 0, 0
    for k, p in enumerate(pushes):
        while j < len(pops) and pops[j] < p:
            j += 1
        need = max(need, k - j + 1)
    return need


def simulate(stages: list[Stage], vector_latency: int, n_img: int = 4,
             end: Stage | None = None) -> dict[str, Any]:
    """Run ``n_img`` back-to-back images through the stages (in list order: every stage
    after its sources).  Returns the host acceptance times of each image's first / last
    pixel, the result times (``end``'s tokens, default the last stage's, plus
    ``vector_latency``), per-FIFO depths, every stage's token times (``times``, by stage),
    latency and initiation interval."""
    accept: list[int] | None = None
    fifo_depths: dict[str, int] = {}
    out_of: dict[Stage, list[int]] = {}  # every stage's token times
    times: list[int] | None = None

    def host(n: int) -> list[int]:  # a valid-only stage reading the host: never stalled
        nonlocal accept
        accept = list(range(n * n_img))
        return list(accept)

    prev: Stage | None = None
    for st in stages:
        p = st.params
        src = prev if st.src == PREV else st.src
        times = None if src is None else out_of[src]
        if st.kind == "window":
            win, pops = _window(times, p["H"], p["W"], p["K"], p["P"], n_img, p.get("G", 1),
                                p.get("GK", 0), p.get("S", 1))
            if times is None:
                accept = pops
            else:
                fifo_depths[st.name] = _fifo_depth(times, pops)
            times = win
        elif st.kind == "pace":  # the host, paced to a later window's walk
            _, pops = _window(None, p["H"], p["W"], 1, p["P"], n_img, p.get("G", 1),
                              p.get("GK", 0))
            accept, times = pops, list(pops)
        elif st.kind == "delay":
            if times is None:  # valid-only consumer straight after the host
                times = host(p["n_host"])
            times = [t + p["lat"] for t in times]
        elif st.kind == "pool":
            if times is None:
                times = host(p["H"] * p["W"])
            H, W = p["H"], p["W"]
            out = []
            for i, t in enumerate(times):
                q = i % (H * W)
                r, c = divmod(q, W)
                if r % 2 == 1 and c % 2 == 1 and r < 2 * (H // 2) and c < 2 * (W // 2):
                    out.append(t + 1)
            times = out
        elif st.kind == "collect":
            if times is None:
                times = host(p["N"])
            N = p["N"]
            times = [times[i] + 1 for i in range(N - 1, len(times), N)]
        elif st.kind == "join":
            late = times if times is not None else host(p["n_host"])
            for k, e in zip(p["args"], st.srcs):
                early = out_of[e] if e is not None else host(p["n_host"])
                fifo_depths[f"{st.name}_arg{k}"] = _fifo_depth(early, late)
            times = [t + 1 for t in late]
        else:
            raise ValueError(st.kind)
        out_of[st] = times
        prev = st
    if times is None:  # no stream stage at all (parallel mode)
        return {"latency": vector_latency, "latency_last": vector_latency, "ii": 1,
                "fifo_depths": {}, "results": [], "times": {}}
    if end is not None:
        times = out_of[end]
    results = [t + vector_latency for t in times]
    per_img_in = len(accept) // n_img
    first = [accept[i * per_img_in] for i in range(n_img)]
    last = [accept[(i + 1) * per_img_in - 1] for i in range(n_img)]
    return {
        "latency": results[0] - first[0],
        "latency_last": results[0] - last[0],
        "ii": results[-1] - results[-2] if len(results) > 1 else None,
        "accept_ii": first[-1] - first[-2] if n_img > 1 else None,
        "fifo_depths": fifo_depths,
        "results": results,
        "first_accept": first,
        "times": out_of,
    }


def results_in_flight(stages: list[Stage], vector_latency: int, end: Stage | None = None
                      ) -> int:
    """The most results still in flight (started, not yet at ``m_tvalid``) at the cycle of a
    later result's first input beat, when the host streams back to back: for image ``i``
    (first beat at ``a_i``), ``#{j < i: out_j >= a_i}``, maximised over enough images to
    reach the steady state.  Parallel mode (no stream stage): ``vector_latency`` (one
    vector per cycle, ``L`` in flight).  An output queue (``hq_outq``) whose credit limit
    is above it never stalls the host while ``m_tready`` is 1."""
    s = simulate(stages, vector_latency, end=end)
    if not s["results"]:
        return vector_latency
    n = max(4, -(-s["latency"] // max(1, s["ii"] or 1)) + 4)
    s = simulate(stages, vector_latency, n_img=n, end=end)
    out, first = s["results"], s["first_accept"]
    return max(sum(1 for j in range(i) if out[j] >= first[i]) for i in range(n))
