"""cocotb testbenches and runner helpers for the generated accelerator (issue 5)."""
