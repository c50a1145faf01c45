"""What bootlab adds to its own environment, kept out of the commands it runs for the user.

A variable bootlab sets for itself (in ``os.environ``, so that libraries read it wherever they look) would
otherwise reach the user's build command, whose own tools may read it too: :func:`for_user_commands` is the
environment without those additions. A value the user had set already is theirs and stays.
"""

from __future__ import annotations

import os

_OWN: set[str] = set()


def set_own(name: str, value: str) -> None:
    """Set ``name`` for this process unless the user has set it; remember it as bootlab's own."""
    if name not in os.environ:
        os.environ[name] = value
        _OWN.add(name)


def for_user_commands() -> dict[str, str]:
    """This process's environment without what :func:`set_own` added."""
    return {k: v for k, v in os.environ.items() if k not in _OWN}
