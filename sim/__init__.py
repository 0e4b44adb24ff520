"""heatq_sim: simulation benches for heatq's generated RTL (cocotb + Icarus, Verilator)."""

from .api import simulate, write_sim_json  # noqa: E402

__all__ = ["simulate", "write_sim_json"]
