"""heatq_sim: simulation benches for heatq's generated RTL (cocotb + Icarus, Verilator)."""
