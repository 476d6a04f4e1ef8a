"""The console guide (docs/console.md) says what the console does: its generated parts (the commands,
the fault glossary) are current, each parameter it names exists with the label it gives, and each
command it shows is one the console has."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.console import guide
from controller.kernels.faults import FAULTS, WARNINGS
from controller.params.registry import REGISTRY, by_name

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "console.md"


def test_the_generated_parts_are_current():
    text = GUIDE.read_text(encoding="utf-8")
    assert guide.rewritten(text) == text, "docs/console.md is stale: run make docs"
    assert guide.main([str(GUIDE), "--check"]) == 0


def test_a_stale_part_is_rewritten_between_its_markers_only(tmp_path):
    text = GUIDE.read_text(encoding="utf-8")
    stale = text.replace("| `faults` shows | what it means and what to do |", "| old | table |", 1)
    assert stale != text and guide.rewritten(stale) == text
    path = tmp_path / "console.md"
    path.write_text(stale, encoding="utf-8")
    assert guide.main([str(path), "--check"]) == 1 and path.read_text(encoding="utf-8") == stale
    assert guide.main([str(path)]) == 0 and path.read_text(encoding="utf-8") == text
    path.write_text(text.replace(guide.GLOSSARY_END, ""), encoding="utf-8")
    assert guide.main([str(path)]) == 2          # a marker gone: refused, the file untouched


def test_every_fault_and_command_is_in_the_guide():
    text = GUIDE.read_text(encoding="utf-8")
    for b in (*FAULTS, *WARNINGS):
        assert f"| `{b.name}`" in text and b.advice in text, b.name
    for name in ("fit", "set", "symmetry", "calibrate", "profile", "mode", "clear"):
        assert re.search(rf"^\| `{name}\b", text, re.M), name


def test_the_parameters_the_guide_names_exist_with_their_labels():
    text = GUIDE.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+\.[A-Za-z0-9_]+)` \| ([^|]+) \|", text, re.M)
    assert len(rows) >= 5
    for name, label in rows:
        assert by_name(name).label == label.strip(), name
    known = {p.name for p in REGISTRY}
    for name in re.findall(r"`(?:set |get )?([a-z]+\.[A-Za-z0-9_]+)", text):
        if not name.endswith((".md", ".csv", ".png", ".log", ".params", ".toml", ".py", ".mcap")):
            assert name in known, name
