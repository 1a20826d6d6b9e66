"""``/api/v1/keys``: the signing key and the root-signed keyset in force (public parts only).

The root key never reaches the manager: keysets are signed offline with
``python -m config_manager keys``; this read-only view shows what services are told.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from .deps import Viewer
from .openapi import api_router
from .schemas import KeysPublic

__all__ = ["router"]

router = api_router(prefix="/api/v1", tags=["keys"])


@router.get("/keys", response_model=KeysPublic)
async def keys_in_force(request: Request, principal: Viewer) -> dict[str, Any]:
    """The key id signing configs now and the keyset in force (null without a root key)."""
    del principal
    ring = request.app.state.keys
    keyset = ring.keyset
    return {
        "signing_key_id": ring.signing.key_id,
        "keyset": None
        if keyset is None
        else {
            "version": keyset.version,
            "issued_at": keyset.issued_at,
            "expires_at": keyset.expires_at,
            "key_ids": keyset.key_ids,
            "root_key_id": keyset.root_key_id,
            "void_epochs_from": keyset.void_epochs_from,
        },
    }
