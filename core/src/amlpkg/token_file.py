"""Reading a bearer token from a file: what the agent and ``deploy`` take instead of a flag.

A token on a command line is visible to every user of the machine; a file (or a
Kubernetes Secret mounted as one) is not. Standard library only, so the edge agent
and the packager share it.
"""

from __future__ import annotations

from pathlib import Path

from amlpkg.errors import InvalidArgumentError


def read_token_file(path: Path, option: str) -> str:
    """The token in ``path`` (surrounding white space removed); ``option`` names it in errors.

    Errors name the file, never its folder.
    """
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(
            f"cannot read {option} {path.name}: {exc.__class__.__name__}",
            hint=f"{option} names a readable text file holding the token",
        ) from None
    if not token:
        raise InvalidArgumentError(
            f"{option} {path.name} is empty",
            hint="write the token (e.g. a contributor token of the team server) into it",
        )
    return token
