"""Amaranth generator of the doping accelerator (systolic Kronecker datapath, factor buffer,
sparse-overlay gather unit). See docs/hardware.md once it lands (issue 4)."""
