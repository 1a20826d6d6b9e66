"""``/api/v1/whoami``: who the calling token is, so that a UI can follow its rights."""

from __future__ import annotations

from typing import Any

from .deps import Viewer
from .openapi import api_router
from .schemas import WhoamiPublic

__all__ = ["router"]

router = api_router(prefix="/api/v1", tags=["tokens"])


@router.get("/whoami", response_model=WhoamiPublic)
async def whoami(principal: Viewer) -> dict[str, Any]:
    """The token's name and role; ``scopes`` lists the services it may act on (null: all)."""
    scopes = sorted(principal.services) if principal.services is not None else None
    return {"name": principal.name, "role": principal.role, "scopes": scopes}
