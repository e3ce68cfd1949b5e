"""One way to turn a pydantic ``ValidationError`` into a message a user can act on.

Every role that validates user input with pydantic (deploy options, model configs,
twin desired properties) reports problems the same way: ``key.path: what is wrong``
joined with ``; ``, unknown keys named as such, and no pydantic URL in the text.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from amlpkg.errors import AmlpkgError, InvalidArgumentError

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(exc: ValidationError, root: str = "(top level)") -> str:
    """``where: what`` for every problem pydantic found, joined with ``; ``."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or root
        what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}: {what}")
    return "; ".join(problems)


def validate_model(
    model: type[M],
    data: Any,
    *,
    what: str,
    hint: str | None = None,
    error: type[AmlpkgError] = InvalidArgumentError,
) -> M:
    """``model.model_validate(data)``, raising ``error("{what}: problems", hint=hint)``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{what}: {describe_validation_error(exc)}", hint=hint) from None
