"""Turn raw console bytes into text fit for matching.

Guests print ANSI colour (Redox's bold `redox login:`), carriage returns (edk2's in-place countdown), NULs and
invalid UTF-8 (a half-written multibyte character when output is cut). The raw bytes go to the log untouched;
this module only makes the *copy* that regexes see. Escapes may be split across reads, so an unfinished escape
at the end of the text is held back until more arrives.
"""

from __future__ import annotations

import codecs
import re

# CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), two-character escapes, then C0 controls other than TAB
# and LF.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]")
# an escape that has started but not finished at the end of the text (held back until the next read)
_UNFINISHED = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*)?$")


def clean(text: str) -> str:
    """Remove escapes, CR, NUL and other control characters; keep TAB and LF."""
    return _ANSI.sub("", text)


def clean_partial(text: str) -> str:
    """Like :func:`clean` for a line still being written: an unfinished escape at its end is dropped."""
    return _ANSI.sub("", _UNFINISHED.sub("", text))


def incremental_decoder() -> codecs.IncrementalDecoder:
    """A UTF-8 decoder that keeps a multibyte character split across two reads intact."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


# What a terminal does with a full-screen program's output, as far as reading its last lines needs: cursor moves
# (CSI row;col H/f, CSI n A-G/d, ESC E) start another line on the screen, and text drawn in the DEC line-drawing
# character set (ESC ( 0 ... ESC ( B: newt's and dialog's box borders, 'lqqqk') is frame, not words.
_LINE_DRAWING = re.compile(r"\x1b\(0.*?(?:\x1b\(B|$)", re.DOTALL)
_CURSOR_MOVE = re.compile(r"\x1b\[[0-9;]*[HfABEFGd]|\x1bE|\r")


def screen_lines(text: str) -> list[str]:
    """The lines a person watching the console saw, in order: the text split at newlines, carriage returns and
    cursor moves, escapes removed, spaces collapsed, empty lines dropped.

    Why: a hang is titled by what the console showed last, and a full-screen dialog (the Debian installer's
    ``[!!] Select a language``) is drawn with cursor moves and box characters, not lines. This is a reading aid
    for the verdict, not a terminal emulator: text drawn over other text stays as two lines."""
    text = _LINE_DRAWING.sub(" ", text)
    text = _CURSOR_MOVE.sub("\n", text)
    lines = []
    for raw in clean(text).split("\n"):
        line = " ".join(raw.split())
        if line:
            lines.append(line)
    return lines
