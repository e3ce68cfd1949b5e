"""Tokens and the audit log, for owners; and the health probe, for anyone."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, StringConstraints

from amlpkg.server import audit, tokens
from amlpkg.server.bodies import Body
from amlpkg.server.deps import API, OWNER, READ, Caller, WorkspaceDep
from amlpkg.server.roles import Role

router = APIRouter(prefix=API, tags=["access"], dependencies=READ)
health_router = APIRouter(prefix=API, tags=["health"])


class TokenOut(BaseModel):
    """A token's facts (never its secret)."""

    id: str
    name: str
    role: Role
    created: float
    created_by: str
    expires: float | None
    revoked: float | None
    active: bool


class TokenIn(Body):
    """A new token."""

    role: Role
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    expires: Annotated[str, StringConstraints(max_length=16)] = Field(
        default="90d", description="lifetime: 30d, 12h, 15m, 90s, or never"
    )


class TokenCreatedOut(BaseModel):
    """The new token's text, shown this once, and its facts."""

    token: str
    info: TokenOut


class AuditOut(BaseModel):
    """One change: who (token), what (method and route), on what, when."""

    id: int
    time: float
    actor: str
    role: str | None
    action: str
    target: str | None
    detail: dict[str, Any]


class HealthOut(BaseModel):
    """The server answers and its store is open."""

    status: str
    store: str


def _out(info: tokens.TokenInfo) -> TokenOut:
    return TokenOut(**info.to_dict(), active=info.active(time.time()))


@health_router.get("/health", response_model=HealthOut)
def health() -> HealthOut:
    """For probes: no token needed, nothing about the workspace told."""
    return HealthOut(status="ok", store="embedded")


@router.get("/tokens", response_model=list[TokenOut], dependencies=OWNER[:1])
def list_tokens(ws: WorkspaceDep) -> list[TokenOut]:
    """Every token of the workspace, newest first."""
    return [_out(t) for t in tokens.list_tokens(ws)]


@router.post("/tokens", response_model=TokenCreatedOut, status_code=201, dependencies=OWNER)
def create_token(body: TokenIn, ws: WorkspaceDep, caller: Caller, request: Request) -> Any:
    """Make a token; its text is in this answer only."""
    text, info = tokens.create_token(
        ws,
        role=body.role,
        name=body.name,
        created_by=f"token:{caller.id}",
        expires=tokens.parse_expiry(body.expires),
    )
    request.state.audit_target = f"token:{info.id}"
    return TokenCreatedOut(token=text, info=_out(info))


@router.delete("/tokens/{token_id}", response_model=TokenOut, dependencies=OWNER)
def revoke_token(token_id: str, ws: WorkspaceDep, request: Request) -> TokenOut:
    """Revoke a token for good."""
    request.state.audit_target = f"token:{token_id}"
    return _out(tokens.revoke_token(ws, token_id))


@router.get("/audit", response_model=list[AuditOut], dependencies=OWNER[:1])
def audit_log(
    ws: WorkspaceDep,
    since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Any]:
    """The newest changes first."""
    return [e.__dict__ for e in audit.entries(ws, since=since, limit=limit)]
