"""Amaranth generator of the doping accelerator: systolic Kronecker datapath, Kronecker-factor
buffer, sparse-overlay gather unit, stream interfaces (docs/hardware.md)."""


def _digest() -> str:
    import hashlib
    from pathlib import Path

    import doping

    h = hashlib.sha1(doping.__version__.encode())
    here = Path(doping.__file__)
    for f in [*sorted(Path(__file__).parent.glob("*.py")), here.with_name("config.py"), here.with_name("arch.py")]:
        h.update(f.read_bytes())
    return h.hexdigest()


#: Read when the generator is imported, so a long-running process keys what it builds by the
#: code it runs, not by files edited since.
_DIGEST = _digest()


def source_digest() -> str:
    """SHA-1 of the doping version, every generator source file, the config module (the input
    window) and the architecture spec (the memory map and pipeline constants), as they were when this process imported
    the generator: a key for anything built from the generated RTL (simulator builds, the flow's
    RTL and simulation stages)."""
    return _DIGEST
