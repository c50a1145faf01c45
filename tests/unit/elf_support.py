"""An ELF with a known function, for the tests that symbolise registers (no tests here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from prereq import requires

#: The tests that compile an ELF need a C compiler (skipped without one outside make test, failed under it).
needs_cc = requires(
    shutil.which("cc") is not None, "needs a C compiler to build an ELF with symbols (make setup installs gcc)"
)


def elf_with_function(tmp_path: Path, name: str) -> tuple[Path, int]:
    """A small program whose ``main`` calls ``name`` (compiled unoptimised, not position-independent, so the
    symbol's address is the address a register holds), and that symbol's address."""
    from elftools.elf.elffile import ELFFile

    src = tmp_path / "k.c"
    src.write_text(f"int {name}(int x) {{ return x * 3 + 1; }}\nint main(void) {{ return {name}(2); }}\n")
    elf = tmp_path / "k.elf"
    subprocess.run(["cc", "-O0", "-no-pie", "-o", str(elf), str(src)], check=True)
    with elf.open("rb") as fh:
        sym = ELFFile(fh).get_section_by_name(".symtab").get_symbol_by_name(name)[0]  # type: ignore[union-attr]
        return elf, int(sym["st_value"])
