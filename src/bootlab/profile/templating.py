"""`{var}` templates in profile fields.

Any string in a profile may name a var: `append = "console=ttyAMA0 redoxsim.build={build}"` with
`vars.build = "isb-barriers"`. Built-ins: `{boot}` (index of the boot in a trial) and `{seed}` (the per-boot
32-bit seed). `{{` and `}}` are literal braces. Only plain names are replaced (no attribute access, no format
specs): a template is data, not code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bootlab.errors import UsageError

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def render(text: str, values: Mapping[str, str], where: str) -> str:
    """Fill ``{name}`` in ``text``; an unknown name is a usage error naming ``where`` (e.g. `profiles.x.append`)."""

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        if m.group(1) is None:  # a lone brace
            raise UsageError(f"{where}: unbalanced `{tok}` in {text!r}; write {{{{ or }}}} for a literal brace")
        name = m.group(1).strip()
        if not _NAME.fullmatch(name):
            raise UsageError(f"{where}: `{tok}` is not a template variable; use {{name}} or write {{{{ for a brace")
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise UsageError(
                f"{where}: unknown variable {{{name}}} (known: {known}); "
                f'define it with vars.{name} = "..." or --set vars.{name}=...'
            )
        return values[name]

    return _TOKEN.sub(sub, text)


def render_tree(node: Any, values: Mapping[str, str], where: str) -> Any:
    """Render every string in a nested dict/list (the raw profile table), keeping other values as they are."""
    if isinstance(node, str):
        return render(node, values, where)
    if isinstance(node, dict):
        return {k: render_tree(v, values, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [render_tree(v, values, f"{where}[{i}]") for i, v in enumerate(node)]
    return node
