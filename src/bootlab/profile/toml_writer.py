"""Write one ``[profiles.NAME]`` table into bootlab.toml, keeping everything else in the file as the user wrote it.

The project file is the user's: their comments, blank lines, key order and quoting must survive an import.
tomlkit parses TOML into a document that remembers all of that and writes it back unchanged except where it
was edited; it is imported here only, so no other command pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bootlab.errors import UsageError

if TYPE_CHECKING:
    from bootlab.profile.importer import Imported

__all__ = ["add_profile"]

# Tables written inline (`machine = {type = "virt", highmem = "off"}`), as the README shows profiles.
_INLINE = ("machine", "cpu", "firmware", "vars")


def _table(imported: Imported, header: list[str]) -> Any:
    import tomlkit

    table = tomlkit.table()
    for line in header:
        table.add(tomlkit.comment(line))
    for key, value in imported.table.items():
        if key in ("drives", "shares"):
            item: Any = tomlkit.array()
            for i, entry in enumerate(value):
                inline = tomlkit.inline_table()
                inline.update(entry)
                comment = imported.comments.get(f"{key}[{i}]")
                item.add_line(inline, comment=comment) if comment else item.add_line(inline)
            item.add_line(indent="")
        elif key == "extra_args":
            item = tomlkit.array()
            group: list[str] = []
            for word in [*value, "-"]:  # one option and its value per line
                if word.startswith("-") and group:
                    item.add_line(*group)
                    group = []
                group.append(word)
            item.add_line(indent="")
        elif isinstance(value, dict) and key in _INLINE:
            item = tomlkit.inline_table()
            item.update(value)
        else:
            item = tomlkit.item(value)
        if key in imported.comments:
            item.comment(imported.comments[key])
        table.add(key, item)
    return table


def add_profile(
    text: str | None, where: str, name: str, imported: Imported, header: list[str], *, replace: bool
) -> str:
    """The project file's new text with ``[profiles.NAME]`` added (or, with ``replace``, put in place of the old).

    ``text`` is the file's current content (None: a new file); ``where`` names it in errors.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError
    from tomlkit.items import Table

    try:
        doc = tomlkit.parse(text) if text is not None else tomlkit.document()
    except TOMLKitError as exc:
        raise UsageError(f"{where}: invalid TOML: {exc}; fix the syntax there") from None
    profiles: Any = doc.get("profiles")
    if profiles is None:
        profiles = tomlkit.table(is_super_table=True)
        doc.append("profiles", profiles)
    elif not isinstance(profiles, Table):
        raise UsageError(f"{where}: `profiles` must hold tables, e.g. [profiles.my-guest]")
    table = _table(imported, header)
    if name in profiles:
        if not replace:
            raise UsageError(f"{where}: profile {name} already exists; choose another name or pass --replace")
        profiles[name] = table
    else:
        profiles.append(name, table)
    out = tomlkit.dumps(doc)
    return out.lstrip("\n") if text is None else out
