"""The generated parts of the console guide (``docs/console.md``): the commands and the fault glossary.

Both come from the code the console runs, so the guide cannot drift from it: the command table from
:class:`controller.console.commands.Console`'s own list (its usage and words, as ``help`` shows them),
the glossary from :func:`controller.kernels.faults.markdown_glossary` (the sentences ``faults``
shows).  ``python -m controller.console.guide docs/console.md`` (``make docs``) rewrites them
between their markers; ``--check`` only says whether they are current (the tests do the same).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from controller.kernels import faults
from controller.kernels.codegen import between_markers

__all__ = ["COMMANDS_BEGIN", "COMMANDS_END", "GLOSSARY_BEGIN", "GLOSSARY_END", "command_table", "rewritten", "main"]

COMMANDS_BEGIN = "<!-- BEGIN GENERATED: console commands, from controller/console/commands.py by `make docs` -->"
COMMANDS_END = "<!-- END GENERATED: console commands -->"
GLOSSARY_BEGIN = "<!-- BEGIN GENERATED: fault glossary, from controller/kernels/faults.py by `make docs` -->"
GLOSSARY_END = "<!-- END GENERATED: fault glossary -->"


def command_table() -> str:
    """Every console command with its usage and what it does, as a Markdown table (``help``'s words)."""
    from controller.console.commands import Console
    from controller.console.session import OfflineBackend
    from controller.params.registry import ParamSet
    # the table is the console's own: a console with nothing behind it lists the same commands
    console = Console(OfflineBackend(ParamSet()), access=None, audit=None, store=Path("ankle.params"),
                      profiles_dir=Path("profiles"))
    rows = ["| command | what it does |", "|---|---|"]
    for name in console.command_names():
        usage, text = console.usage(name)
        # a table cell's pipe is escaped, in a code span too (GitHub's tables)
        rows.append(f"| `{usage.replace('|', chr(92) + '|')}` | {text.replace('|', chr(92) + '|')} |")
    return "\n".join(rows) + "\n"


def rewritten(text: str) -> str:
    """``text`` (the guide) with both generated parts brought up to date."""
    text = between_markers(text, COMMANDS_BEGIN, COMMANDS_END, command_table())
    return between_markers(text, GLOSSARY_BEGIN, GLOSSARY_END, faults.markdown_glossary())


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m controller.console.guide", description=__doc__.splitlines()[0])
    ap.add_argument("guide", help="the console guide to rewrite (docs/console.md)")
    ap.add_argument("--check", action="store_true", help="only say whether it is up to date (exit 1 if not)")
    args = ap.parse_args(argv)
    path = Path(args.guide)
    try:
        text = path.read_text(encoding="utf-8")
        new = rewritten(text)
    except (OSError, ValueError) as e:
        print(f"error: {args.guide}: {e}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.guide}: {'up to date' if new == text else 'stale: run make docs'}")
        return 0 if new == text else 1
    if new != text:
        path.write_text(new, encoding="utf-8")
    print(f"{args.guide}: commands and glossary {'written' if new != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
