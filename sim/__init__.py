"""cocotb testbench and runner for the generated accelerator (Verilator, Icarus)."""
