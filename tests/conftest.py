"""Shared fixtures: random quantised layers, and a tool to corrupt packs on purpose."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from doping.golden import QuantLayer, Requant
from doping.synth import random_csr


def random_layer(rng: np.random.Generator, m1, n1, m2, n2, nnz=None, order="AX", rq=None) -> QuantLayer:
    """A valid QuantLayer with uniform int8 factors and overlay values over the full int8 range."""
    m, n = m1 * m2, n1 * n2
    if nnz is None:
        nnz = int(rng.integers(0, m * n + 1))
    rowptr, cols = random_csr(rng, m, n, nnz)
    i8 = lambda shape: rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
    rq = rq or (Requant(int(rng.integers(1, 2**15)), int(rng.integers(8, 20))),
                Requant(int(rng.integers(1, 2**15)), int(rng.integers(0, 20))),
                Requant(int(rng.integers(1, 2**15)), int(rng.integers(15, 30))))
    return QuantLayer(
        name="t", shape=(m, n), a=i8((m1, n1)), b=i8((m2, n2)), rowptr=rowptr, cols=cols, vals=i8(nnz),
        order=order, x_scale=0.02, a_scale=0.01, b_scale=0.03, t_rq=rq[0], ov_rq=rq[1], y_rq=rq[2],
    ).validate()


def int8_batch(rng, batch, n):
    return rng.integers(-128, 128, size=(batch, n), dtype=np.int64).astype(np.int8)


def rewrite_pack(src, dst, manifest=None, arrays=None, drop=()):
    """Copy pack ``src`` to ``dst``, applying ``manifest(m)`` edits, replacing arrays by member
    name, and dropping members, without any validation: how a broken pack is made."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            data = zin.read(name)
            if name == "manifest.json" and manifest is not None:
                m = json.loads(data)
                manifest(m)
                data = json.dumps(m).encode()
            elif arrays and name in arrays:
                buf = io.BytesIO()
                np.save(buf, arrays[name])
                data = buf.getvalue()
            zout.writestr(name, data)
    return dst


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
