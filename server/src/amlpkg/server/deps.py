"""FastAPI dependencies: a workspace per request, the caller's token and role, the audit.

Routers declare these; handlers never check a token or a role themselves. Every
route but ``/api/v1/health`` needs a token (the routers' reader dependency);
write routes add :data:`WRITE` (contributor and audited), owner routes :data:`OWNER`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from amlpkg.errors import UnauthenticatedError
from amlpkg.server import audit, tokens
from amlpkg.server.failures import Redactor
from amlpkg.server.pool import WorkspacePool
from amlpkg.server.roles import PermissionDeniedError, Role
from amlpkg.server.settings import ServerSettings
from amlpkg.server.tokens import TokenInfo
from amlpkg.store.workspace import Workspace

API = "/api/v1"
"""Every route's prefix; the version changes when the contract breaks."""


@dataclass
class ServerState:
    """What the app holds between requests (``app.state.amlpkg``)."""

    pool: WorkspacePool
    settings: ServerSettings
    redact: Redactor
    uploads: Path
    telemetry: Workspace

    def close(self) -> None:
        """Close every workspace the app opened."""
        self.pool.close()
        self.telemetry.close()


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` one on the
# thread pool, and each such hop (a thread woken, then the loop) cost a request more than
# the work on a busy machine.


def state_of(request: Request) -> ServerState:
    """The app's :class:`ServerState`."""
    state: ServerState = request.app.state.amlpkg
    return state


async def server_state(request: Request) -> ServerState:
    """The app's :class:`ServerState` (the dependency)."""
    return state_of(request)


def workspace(request: Request) -> Iterator[Workspace]:
    """A workspace lent to this request alone."""
    with state_of(request).pool.workspace() as ws:
        yield ws


WorkspaceDep = Annotated[Workspace, Depends(workspace)]
State = Annotated[ServerState, Depends(server_state)]
_bearer = HTTPBearer(auto_error=False, description="An API token: amlpkg server token create")


def principal(
    ws: WorkspaceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenInfo:
    """The active token the request carries, or 401."""
    if credentials is None:
        raise UnauthenticatedError(
            "this route needs an API token", hint="send 'Authorization: Bearer <token>'"
        )
    return tokens.authenticate(ws, credentials.credentials)


def require(role: Role) -> Callable[..., Awaitable[TokenInfo]]:
    """A dependency that lets through tokens of ``role`` or above, else 403."""

    async def check(caller: Annotated[TokenInfo, Depends(principal)]) -> TokenInfo:
        if not caller.role.allows(role):
            raise PermissionDeniedError(
                f"a {caller.role.value} token may not do this; it needs {role.value} or above",
                hint="ask a workspace owner for a token with that role",
            )
        return caller

    check.__name__ = f"require_{role.value}"
    return check


async def audited(
    request: Request, ws: WorkspaceDep, caller: Annotated[TokenInfo, Depends(principal)]
) -> AsyncIterator[None]:
    """Record the change after the handler succeeded (a failed one changed nothing).

    The handler may name what it made in ``request.state.audit_target``, or write the
    row itself inside its own transaction with :func:`audit_now`.
    """
    yield
    if not getattr(request.state, "audited", False):
        await run_in_threadpool(audit_now, request, ws, caller)


def audit_now(
    request: Request, ws: Workspace, caller: TokenInfo, target: str | None = None
) -> None:
    """Write the request's audit row now (in the caller's open transaction, if any)."""
    route: Any = request.scope.get("route")
    params = {k: str(v) for k, v in request.path_params.items()}
    target = target or getattr(request.state, "audit_target", None)
    if target is None and params:
        target = "/".join(params.values())
    audit.record(
        ws,
        actor=f"token:{caller.id}",
        role=caller.role.value,
        action=f"{request.method} {getattr(route, 'path_format', request.url.path)}",
        target=target,
        detail={"path_params": params, "token_name": caller.name},
    )
    request.state.audited = True


READ: list[DependsParam] = [Depends(require(Role.reader))]
# scope="function": the audit row is written before the answer goes out.
WRITE: list[DependsParam] = [
    Depends(require(Role.contributor)),
    Depends(audited, scope="function"),
]
OWNER: list[DependsParam] = [Depends(require(Role.owner)), Depends(audited, scope="function")]
Caller = Annotated[TokenInfo, Depends(principal)]
