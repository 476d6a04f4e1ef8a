"""Writes the kernels' C constants from the Python tables: ``controller/kernels/_tables.pxd``.

The Python tables are the declaration (:mod:`controller.kernels.faults`,
:mod:`controller.kernels.telemetry`); the kernels ``cimport`` what this writes, so no constant
is kept by hand on the Cython side.  ``setup.py`` calls :func:`write` before ``cythonize``; the
file is rewritten only when its text changes, so a build stays incremental (Cython recompiles
the kernels that cimport it only then).  The generated file is not in git.

Each table is one function returning a :class:`Section`; :data:`SECTIONS` lists them in the
file's order.  Another table (the parameter registry's indices, say) is one more function
and one more entry there.  This module imports only pure-Python tables: it runs before
anything is compiled.

``python -m controller.kernels.codegen`` writes the file; ``--check`` only says whether it is
up to date (exit status 1 if not).  ``--readme README.md`` rewrites the README's generated
fault table (between its ``BEGIN GENERATED`` and ``END GENERATED`` markers; ``make docs``).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from controller.kernels import faults, telemetry

__all__ = ["Constant", "Section", "SECTIONS", "PATH", "render", "constants", "write", "write_all", "write_if_changed", "is_current",
           "check_compiled", "README_BEGIN", "README_END", "with_readme_table"]

#: The generated file, beside this module.
PATH = Path(__file__).resolve().with_name("_tables.pxd")
_IDENTIFIER = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
_CTYPES = {"uint32_t": (0, 2 ** 32 - 1), "int": (-2 ** 31, 2 ** 31 - 1)}


@dataclass(frozen=True)
class Constant:
    """One C constant: ``#define NAME EXPR`` typed ``ctype`` for Cython; ``value`` is what
    ``EXPR`` evaluates to (compared with the compiled modules by the tests)."""

    name: str
    ctype: str
    value: int
    expr: str
    comment: str = ""


@dataclass(frozen=True)
class Section:
    """The constants of one table, under a heading comment; ``source`` is the file that declares
    the table (named in the generated file's header and in :func:`check_compiled`'s error)."""

    title: str
    source: str
    constants: Tuple[Constant, ...]


_FAULTS_PY = "controller/kernels/faults.py"
_TELEMETRY_PY = "controller/kernels/telemetry.py"


def _bits(prefix: str, table) -> Tuple[Constant, ...]:
    bits = [b.bit for b in table]
    if len(set(bits)) != len(bits) or not all(0 <= b < 32 for b in bits):
        raise ValueError(f"codegen: the {prefix}* bits must be distinct, 0..31: {bits}")
    return tuple(Constant(f"{prefix}{b.name.upper()}", "uint32_t", b.mask, f"(1u << {b.bit})", b.meaning)
                 for b in table)


def fault_constants() -> Section:
    """ANKLE_FAULT_<NAME> for every bit of the fault word, and ANKLE_FAULTS_DEGRADING."""
    bits = _bits("ANKLE_FAULT_", faults.FAULTS)
    unknown = [f.name for f in faults.FAULTS if f.response not in (faults.PASSIVE, faults.SAFE)]
    if unknown:
        raise ValueError(f"codegen: fault(s) {', '.join(unknown)}: response must be {faults.PASSIVE!r} or {faults.SAFE!r}")
    degrading = [c for c, f in zip(bits, faults.FAULTS) if f.response == faults.PASSIVE]
    expr = "(" + " | ".join(c.name for c in degrading) + ")" if degrading else "0u"
    return Section("Fault word bits (latched), faults.FAULTS.", _FAULTS_PY, bits + (
        Constant("ANKLE_FAULTS_DEGRADING", "uint32_t", faults.DEGRADING, expr,
                 "faults that only take powered push-off away; every other one gives the safe state"),))


def warning_constants() -> Section:
    """ANKLE_WARN_<NAME> for every bit of the warning word."""
    return Section("Warning word bits (recomputed every tick, never latched), faults.WARNINGS.", _FAULTS_PY,
                   _bits("ANKLE_WARN_", faults.WARNINGS))


def _values(prefix: str, table) -> None:
    values = [v.value for v in table]
    if len(set(values)) != len(values):
        raise ValueError(f"codegen: the {prefix}* values must be distinct: {values}")


def mode_constants() -> Section:
    """ANKLE_MODE_<NAME> for every mode."""
    _values("ANKLE_MODE_", faults.MODE_TABLE)
    return Section("Controller modes (Safety.mode), faults.MODE_TABLE.", _FAULTS_PY, tuple(
        Constant(f"ANKLE_MODE_{m.name.upper()}", "int", m.value, str(m.value), m.meaning)
        for m in faults.MODE_TABLE))


def gait_source_constants() -> Section:
    """GAIT_SOURCE_<NAME> for every value of GaitState.source."""
    _values("GAIT_SOURCE_", faults.GAIT_SOURCE_TABLE)
    return Section("Where the estimator's phase comes from (GaitState.source), faults.GAIT_SOURCE_TABLE.",
                   _FAULTS_PY, tuple(
        Constant(f"GAIT_SOURCE_{s.name.upper()}", "int", s.value, str(s.value), s.meaning)
        for s in faults.GAIT_SOURCE_TABLE))


def telemetry_constants() -> Section:
    """T_<NAME>, the index of every telemetry column, and N_TELEMETRY, the row's width."""
    cols = tuple(Constant(f"T_{c.name.upper()}", "int", i, str(i), f"[{c.unit}] {c.meaning}")
                 for i, c in enumerate(telemetry.COLUMNS))
    n = len(telemetry.COLUMNS)
    return Section("Telemetry row: the index of each column (Tick.publish_row), telemetry.COLUMNS.",
                   _TELEMETRY_PY, cols + (Constant("N_TELEMETRY", "int", n, str(n), "columns in a row"),))


#: The tables, in the file's order: one function each (a new table: one more function here).
SECTIONS: Tuple[Callable[[], Section], ...] = (
    fault_constants, warning_constants, mode_constants, gait_source_constants, telemetry_constants,
)


def _sections() -> Tuple[Section, ...]:
    sections = tuple(make() for make in SECTIONS)
    seen = set()
    for section in sections:
        for c in section.constants:
            if not _IDENTIFIER.match(c.name):
                raise ValueError(f"codegen: {c.name!r} is not a C constant name (A-Z, 0-9, _)")
            if c.name in seen:
                raise ValueError(f"codegen: {c.name} is declared twice (two names that differ only in case?)")
            seen.add(c.name)
            lo, hi = _CTYPES[c.ctype]
            if not lo <= c.value <= hi:
                raise ValueError(f"codegen: {c.name} = {c.value} does not fit a {c.ctype}")
    return sections


def _sources(sections: Sequence[Section]) -> str:
    return " and ".join(dict.fromkeys(s.source for s in sections))


def constants() -> Dict[str, int]:
    """Every generated constant's name and value, as the tables say they should be compiled."""
    return {c.name: c.value for s in _sections() for c in s.constants}


def _comment(text: str) -> str:
    # inside a C comment inside a Cython string literal: no comment end, no escapes, no end quotes
    return " ".join(text.replace("*/", "* /").replace("\\", "/").replace('"' * 3, "'" * 3).split())


def render() -> str:
    """The text of the generated ``_tables.pxd``."""
    sections = _sections()
    out = [
        "# GENERATED by controller/kernels/codegen.py from " + _sources(sections) + ": do not edit.",
        "# setup.py writes it before cythonize (python setup.py build_ext --inplace); not in git.",
        "# Every constant the kernels compile with that a Python table declares, one section per table.",
        "",
        "from libc.stdint cimport uint32_t",
        "",
        "",
        "cdef extern from *:",
        '    """',
        "    #ifndef ANKLE_TABLES_GENERATED",
        "    #define ANKLE_TABLES_GENERATED",
    ]
    for s in sections:
        out.append(f"    /* {_comment(s.title)} */")
        for c in s.constants:
            comment = f"  /* {_comment(c.comment)} */" if c.comment else ""
            out.append(f"    #define {c.name} {c.expr}{comment}")
    out += ["    #endif", '    """']
    for s in sections:
        for c in s.constants:
            out.append(f"    const {c.ctype} {c.name}")
    out += [
        "",
        "",
        "cdef inline dict tables_as_compiled():",
        '    """Every constant above as this module was compiled with it (name -> value): the',
        '    kernels expose it as ``compiled_tables()`` so the tests can compare it with the tables."""',
        "    return {",
    ]
    for s in sections:
        for c in s.constants:
            out.append(f"        {c.name!r}: {c.name},")
    out += ["    }", ""]
    return "\n".join(out)


def is_current(path: Optional[Path] = None) -> bool:
    """Whether the generated file holds what :func:`render` makes from today's tables."""
    path = PATH if path is None else Path(path)
    try:
        return path.read_text(encoding="utf-8") == render()
    except FileNotFoundError:
        return False


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds it; True if it was written.
    An unchanged file keeps its time stamp, so nothing that includes it recompiles."""
    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def write(path: Optional[Path] = None) -> bool:
    """Write the generated file if its text changed (atomically); True if it was written."""
    return write_if_changed(PATH if path is None else Path(path), render())


def write_all(root: Optional[Path] = None) -> List[Path]:
    """Every generated Cython file of the kernels (``setup.py`` calls this before cythonize):
    this module's tables, and the parameter registry's indices
    (:func:`controller.params.codegen.param_index_pxi`).  Returns the files written."""
    from controller.params.codegen import PXI_PATH, param_index_pxi
    root = PATH.parents[2] if root is None else Path(root)
    written = []
    for rel, text in ((PATH.relative_to(PATH.parents[2]), render()), (PXI_PATH, param_index_pxi())):
        if write_if_changed(root / rel, text):
            written.append(root / rel)
    return written


def check_compiled(values: Dict[str, int], module: str) -> None:
    """ImportError naming the difference if ``values`` (a kernel's ``compiled_tables()``) is not
    what the tables declare: the module was compiled from other tables and must be rebuilt, or
    it would report faults and columns under the wrong names."""
    want = constants()
    if values == want:
        return
    wrong = sorted(n for n in set(want) | set(values) if want.get(n) != values.get(n))
    raise ImportError(f"{module} was built from other tables than {_sources(_sections())} "
                      f"({', '.join(wrong[:5])}{', ...' if len(wrong) > 5 else ''} differ): rebuild it "
                      f"with `python setup.py build_ext --inplace`")


#: The markers around the README's generated fault table.
README_BEGIN = "<!-- BEGIN GENERATED: fault and warning words, from controller/kernels/faults.py by `make docs` -->"
README_END = "<!-- END GENERATED: fault and warning words -->"


def between_markers(text: str, begin_marker: str, end_marker: str, body: str) -> str:
    """``text`` with what stands between ``begin_marker`` and ``end_marker`` replaced by ``body``,
    each line indented as the begin marker is.  ValueError if the markers are not there once
    each, in order, or the begin marker does not start its line."""
    begin, end = text.find(begin_marker), text.find(end_marker)
    if text.count(begin_marker) != 1 or text.count(end_marker) != 1 or end < begin:
        raise ValueError(f"the file must hold {begin_marker!r} and then {end_marker!r}, once each")
    line_start = text.rfind("\n", 0, begin) + 1
    indent = text[line_start:begin]
    if indent.strip():
        raise ValueError("the begin marker must start its line")
    table = "".join(indent + line + "\n" for line in body.splitlines())
    after = begin + len(begin_marker)
    return text[:after] + "\n" + table + indent + text[end:]


def with_readme_table(text: str) -> str:
    """``text`` (the README) with the table between its markers replaced by
    :func:`controller.kernels.faults.markdown_fault_table` (see :func:`between_markers`)."""
    return between_markers(text, README_BEGIN, README_END, faults.markdown_fault_table())


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m controller.kernels.codegen", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only say whether the generated file is up to date")
    ap.add_argument("--readme", metavar="FILE", help="rewrite the generated fault table in this README instead")
    args = ap.parse_args(argv)
    if args.readme:
        path = Path(args.readme)
        try:
            text = path.read_text(encoding="utf-8")
            new = with_readme_table(text)
        except (OSError, ValueError) as e:
            print(f"error: {args.readme}: {e}", file=sys.stderr)
            return 2
        if new != text:
            path.write_text(new, encoding="utf-8")
        print(f"{args.readme}: fault table {'written' if new != text else 'up to date'}")
        return 0
    if args.check:
        current = is_current()
        print(f"{PATH.name}: {'up to date' if current else 'stale: run python setup.py build_ext --inplace'}")
        return 0 if current else 1
    print(f"{PATH.name}: {'written' if write() else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
