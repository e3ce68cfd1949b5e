"""Names and references of registered models: ``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from amlpkg.errors import InvalidArgumentError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def check_name(name: str) -> str:
    """``name`` if it is a safe model name; it becomes part of paths, URLs and image tags."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InvalidArgumentError(
            f"invalid model name {name!r}",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit,"
            " without '..' (no '/', spaces or other characters)",
        )
    return name


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid alias (a letter, then letters, digits, '_' or '-')."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidArgumentError(
            f"invalid alias {alias!r}",
            hint="use a letter then up to 63 letters, digits, '_' or '-', e.g. production",
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version``/``alias`` or neither (the latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_model_ref(ref: str) -> ModelRef:
    """Parse ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidArgumentError(
            "empty model reference", hint="use NAME, NAME:VERSION or NAME@ALIAS"
        )
    ref = ref.strip()
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return ModelRef(check_name(name), alias=check_alias(alias))
    if ":" in ref:
        name, _, version = ref.partition(":")
        if not version.isdigit() or int(version) < 1:
            raise InvalidArgumentError(
                f"invalid version {version!r} in {ref!r}", hint="versions are integers from 1"
            )
        return ModelRef(check_name(name), version=int(version))
    return ModelRef(check_name(ref))
