"""``/api/v1/tokens``: API tokens (admin only). A token is shown once, when created."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response, status

from ..problems import Problem
from ..store import AuditEntry
from ..tokens import hash_token, new_token
from .deps import Admin, StoreDep, json_model, request_id
from .openapi import api_router, problems
from .schemas import TokenCreate, TokenCreatedPublic, TokenPublic

__all__ = ["router"]

router = api_router(prefix="/api/v1/tokens", tags=["tokens"])


@router.get("", response_model=list[TokenPublic])
async def list_tokens(admin: Admin, store: StoreDep) -> list[dict[str, Any]]:
    admin.require_unscoped("token management")
    return [
        {
            "name": t.name,
            "role": t.role,
            "created_at": t.created_at,
            "created_by": t.created_by,
            "revoked_at": t.revoked_at,
            "services": list(t.services) if t.services is not None else None,
        }
        for t in await store.tokens()
    ]


@router.post(
    "",
    response_model=TokenCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problems(409),
)
async def create_token(
    admin: Admin,
    body: Annotated[TokenCreate, Depends(json_model(TokenCreate))],
    store: StoreDep,
    request: Request,
) -> dict[str, Any]:
    admin.require_unscoped("token management")
    if any(t.name == body.name for t in await store.tokens()):
        raise Problem(
            409, "Token exists", f"a token named {body.name!r} exists", kind="token-exists"
        )
    token = new_token()
    await store.add_token(
        body.name, body.role.value, hash_token(token), created_by=admin.name, services=body.services
    )
    record = next(t for t in await store.tokens() if t.name == body.name)
    await store.add_audit(
        AuditEntry(
            actor=admin.name,
            action="token.create",
            request_id=request_id(request),
            detail={"token": body.name, "role": body.role.value, "services": body.services or []},
        )
    )
    return {
        "name": record.name,
        "role": record.role,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "revoked_at": None,
        "services": body.services or None,
        "token": token,
    }


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
async def revoke_token(name: str, admin: Admin, store: StoreDep, request: Request) -> Response:
    admin.require_unscoped("token management")
    if not await store.revoke_token(name):
        raise Problem(404, "No such token", f"no active token named {name!r}", kind="unknown-token")
    await store.add_audit(
        AuditEntry(
            actor=admin.name,
            action="token.revoke",
            request_id=request_id(request),
            detail={"token": name},
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
