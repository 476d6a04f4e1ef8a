"""The parameter side of the Cython build: registry indices as a generated include.

The kernels' ``configure_from`` reads a parameter vector (registry order, what
:meth:`controller.params.registry.ParamSet.vector` gives) without the GIL, so the
index of each parameter must be a compile-time constant on the Cython side.  The
registry is the source: before ``cythonize``, ``setup.py`` has
:func:`controller.kernels.codegen.write_all` write ``controller/kernels/_param_index.pxi``
(git-ignored, like the ``.c`` files) only when its text changed, so an unchanged registry
rebuilds nothing.

This module imports only the registry (pure Python): setup.py runs it before any
extension is built.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from controller.params.registry import REGISTRY, Param

__all__ = ["constant_name", "param_index_pxi", "PXI_PATH",
           "FLAG_LIVE", "FLAG_STARTUP", "FLAG_WHOLE"]

#: Where the include goes, relative to the project root.
PXI_PATH = Path("controller") / "kernels" / "_param_index.pxi"
#: Bits of ``param_flags(i)``: the registry's ``live``, ``startup`` and ``kind is int``.
FLAG_LIVE, FLAG_STARTUP, FLAG_WHOLE = 1, 2, 4


def constant_name(name: str) -> str:
    """``pushoff.torque_Nm_kg`` -> ``P_PUSHOFF_TORQUE_NM_KG``."""
    return "P_" + re.sub(r"[^0-9A-Za-z]", "_", name).upper()


def _flags(p: Param) -> int:
    return (FLAG_LIVE if p.live else 0) | (FLAG_STARTUP if p.startup else 0) | (FLAG_WHOLE if p.kind is int else 0)


def param_index_pxi(registry: Iterable[Param] = REGISTRY) -> str:
    """The include's text: one ``P_*`` index per parameter, ``N_PARAMS``, and the flags."""
    params = tuple(registry)
    names = [constant_name(p.name) for p in params]
    if len(set(names)) != len(names):
        clash = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"parameter names map to the same Cython constant: {', '.join(clash)}")
    # one printable character per parameter ('@' + flags): no NUL inside the C string
    flags = "".join(chr(0x40 + _flags(p)) for p in params)
    lines = [
        "# Generated from controller/params/registry.py by controller/params/codegen.py (setup.py);",
        "# do not edit: change the registry and rebuild.",
        "# Index of each parameter in a parameter vector (registry order: ParamSet.vector()).",
        "cdef enum:",
    ]
    lines += [f"    {n} = {i}    # {p.name} [{p.unit}]" for i, (n, p) in enumerate(zip(names, params))]
    lines += [
        f"    N_PARAMS = {len(params)}",
        f"    PARAM_FLAG_LIVE = {FLAG_LIVE}",
        f"    PARAM_FLAG_STARTUP = {FLAG_STARTUP}",
        f"    PARAM_FLAG_WHOLE = {FLAG_WHOLE}",
        "",
        "",
        "cdef inline int param_flags(int i) noexcept nogil:",
        "    \"\"\"PARAM_FLAG_* of parameter ``i`` (live, start-up, whole number).\"\"\"",
        f"    return (<const unsigned char*>b'{flags}')[i] - 0x40",
        "",
    ]
    return "\n".join(lines)
