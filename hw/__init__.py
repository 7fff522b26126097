"""Amaranth generator of the doping accelerator: systolic Kronecker datapath, Kronecker-factor
buffer, sparse-overlay gather unit, stream interfaces (docs/hardware.md)."""
