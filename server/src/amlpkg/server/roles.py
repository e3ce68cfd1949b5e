"""Roles of a workspace and what each may do, and the error for a refused action."""

from __future__ import annotations

from enum import StrEnum

from amlpkg.errors import AmlpkgError


class Role(StrEnum):
    """A token's role in its workspace; each role may do what the ones below it may."""

    reader = "reader"
    contributor = "contributor"
    owner = "owner"

    @property
    def rank(self) -> int:
        """Order of the roles: reader < contributor < owner."""
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


_RANKS = {Role.reader: 0, Role.contributor: 1, Role.owner: 2}


# Belongs in amlpkg.errors beside UnauthenticatedError; kept here until the core has it.
class PermissionDeniedError(AmlpkgError):
    """The caller is known but its role does not allow the action."""

    code = "permission_denied"
    http_status = 403
