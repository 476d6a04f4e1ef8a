"""The facts the code relies on live inside the repository (docs/reference.md, sim/data).

The project's notes outside the checkout (its REFERENCE file and the shared data beside it) are where
the facts were gathered; a clone must build, run and test without them.  So no file of the repository
may cite that file or reach for a directory beside the checkout:

- nowhere (code, tests, docs, build files): the outside reference file's name, or a relative path
  out of the checkout to the shared directory;
- in code and build files (.py, .pyx, .pxd, .toml, Makefile): a path built to a ``shared``
  directory, or a ``shared/data/`` path: that is a run-time need.

What stays allowed: a document or a data file's header saying that a figure was copied from the
project's shared data (provenance: nothing reads it at run time; the copied files' own ``#`` headers
and ``docs/reference.md`` do so).
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()

CODE_SUFFIXES = {".py", ".pyx", ".pxd", ".toml"}
DOC_SUFFIXES = {".md"}
SKIP_DIRS = {".git", ".venv", "build", "__pycache__", ".hypothesis", ".pytest_cache", "out"}

# Built from pieces so that this file does not match itself.
OUTSIDE_FILE = "REFERENCE" + ".md"
EVERYWHERE = re.compile(re.escape(OUTSIDE_FILE) + r"|\.\./+shared\b")
IN_CODE = re.compile(r"""["']shared["']|\bshared/data/""")


def _files():
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if not path.is_file() or path.resolve() == THIS:
            continue
        if path.suffix in CODE_SUFFIXES or path.name == "Makefile":
            yield rel, True
        elif path.suffix in DOC_SUFFIXES:
            yield rel, False


def _offences(text, code):
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        if EVERYWHERE.search(line) or (code and IN_CODE.search(line)):
            found.append(f"{n}: {line.strip()[:100]}")
    return found


def test_the_scan_sees_the_files_that_used_to_cite_the_outside_reference():
    seen = {str(rel) for rel, _ in _files()}
    for rel in ("README.md", "hal/ak.py", "hal/_mit.pyx", "hal/_mit.pxd", "controller/kernels/_monitor.pyx",
                "tests/test_sim_reference.py", "sim/tools/derive_reference.py", "Makefile",
                "pyproject.toml", "docs/reference.md"):
        assert rel in seen, rel


def test_no_file_needs_the_notes_outside_the_checkout():
    bad = {}
    for rel, code in _files():
        offences = _offences((ROOT / rel).read_text(encoding="utf-8", errors="replace"), code)
        if offences:
            bad[str(rel)] = offences
    assert not bad, "cite docs/reference.md and ship the data in the repository instead:\n" + "\n".join(
        f"  {rel}:{line}" for rel, lines in bad.items() for line in lines)


@pytest.mark.parametrize("text, code, caught", [
    ("# Layout: ../shared/" + OUTSIDE_FILE + ", protocols", True, True),
    ("see `" + OUTSIDE_FILE + "`", False, True),
    ("python -m tool --shared ../shared", False, True),
    ('DATA = Path(__file__).parents[2] / "shared" / "data"', True, True),
    ('default="../shared/data/x.csv"', True, True),
    ("# DERIVATION: from shared/data/x.csv", True, True),
    ("copied from the project's shared data (shared/data/x.csv)", False, False),   # provenance in a doc
    ("see docs/reference.md", True, False),
    ("shared_memory = SharedChannels.create()", True, False),
])
def test_the_patterns_catch_a_citation_and_spare_provenance(text, code, caught):
    assert bool(_offences(text, code)) == caught
