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
