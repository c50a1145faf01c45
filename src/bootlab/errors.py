"""The exception hierarchy that maps onto bootlab's stable exit codes.

Exit codes are part of the scripting contract (see DESIGN.md): 0 pass, 1 guest failed, 2 usage, 3 infra.
Anything the user can fix by editing a file or a flag is a :class:`UsageError` and is shown as one line.
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_GUEST_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRA = 3


class BootlabError(Exception):
    """Base of every error bootlab reports to the user as one line."""

    exit_code = EXIT_USAGE


class UsageError(BootlabError):
    """Bad input: a file, key, value or flag the user can fix. Exit code 2."""

    exit_code = EXIT_USAGE


class InfraError(BootlabError):
    """bootlab could not do its job on this host (missing binary, socket error). Exit code 3."""

    exit_code = EXIT_INFRA
