"""Request and response bodies of the API (``XCreate`` / ``XUpdate`` / ``XPublic``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..tokens import Role

__all__ = [
    "AllConfigsPublic",
    "AuditPublic",
    "CompatibilityPublic",
    "ConfigPublic",
    "DiffPublic",
    "ImportPublic",
    "InstancePublic",
    "PresetAppliedPublic",
    "PresetPreviewPublic",
    "PresetPublic",
    "PresetServicePreview",
    "PresetVersionPublic",
    "ReadinessPublic",
    "RetiredPublic",
    "ServicePublic",
    "SyncForcePublic",
    "SyncPublic",
    "TokenCreate",
    "TokenCreatedPublic",
    "TokenPublic",
    "ValidationPublic",
    "VersionPublic",
    "WhoamiPublic",
    "WritePublic",
]


class ConfigPublic(BaseModel):
    """A service's config as stored (secrets masked)."""

    service: str
    version: int = Field(description="0 means the model's defaults: nothing stored yet.")
    epoch: int
    etag: str
    values: dict[str, Any]
    updated_at: str | None
    updated_by: str | None = Field(description="Name of the token that wrote this version.")


class AllConfigsPublic(BaseModel):
    """Every service's current config (secrets masked)."""

    epoch: int
    configs: dict[str, ConfigPublic]


class WritePublic(ConfigPublic):
    """The result of an accepted write."""

    changed: bool = Field(
        True,
        description="False: the document equals the current one; no version was created "
        "(also said by the Config-Changed: false header).",
    )
    publication: Literal["published", "pending", "unchanged"] = Field(
        description="'published': the broker acknowledged the signed envelope; 'pending': it "
        "is in the outbox and will be published, in order, as soon as the broker is reachable; "
        "'unchanged': nothing was written."
    )


class ValidationPublic(BaseModel):
    """What a write would do (nothing is stored)."""

    valid: Literal[True] = True
    service: str
    based_on_version: int
    would_be_version: int
    values: dict[str, Any]


class VersionPublic(BaseModel):
    service: str
    version: int
    epoch: int
    created_at: str
    created_by: str
    change_id: str
    values: dict[str, Any]


class ServicePublic(BaseModel):
    name: str
    version: int
    epoch: int
    updated_at: str | None
    instances: int


class InstancePublic(BaseModel):
    instance: str
    status: str
    version: int | None
    epoch: int | None
    reason: str | None
    detail: str | None = Field(None, description="One sentence on a rejection or failure.")
    time: str | None
    freshness: str | None = Field(
        None, description="waiting, stale or fresh: the instance's view of the freshness record."
    )
    received_at: float
    current: bool = Field(description="True when it runs the service's current version.")
    forged: bool = Field(
        False,
        description="True when the latest report received for this instance failed "
        'verification (docs/protocol.md, "Report signature"); the other fields keep the '
        "last genuine state.",
    )
    forged_reason: str | None = Field(
        None,
        description="Why it is forged: too_large, malformed, unsigned, bad_signature, "
        "identity_mismatch, key_mismatch or replayed.",
    )
    key_id: str | None = Field(None, description="Id of the report key pinned for it.")
    pending_key_id: str | None = Field(
        None,
        description="Id of a key that signed a report validly but is not the pinned one "
        "(key_mismatch): what POST .../key may approve.",
    )


class InstanceKeyApprove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_id: str = Field(
        pattern=r"^[0-9a-f]{16}$",
        description="The unapproved key's id, as shown in pending_key_id (16 hex digits).",
    )


class InstanceKeyPublic(BaseModel):
    service: str
    instance: str
    key_id: str
    previous_key_id: str | None
    pinned_at: str
    pinned_by: str | None
    forged: bool = Field(description="Whether the instance still shows as forged.")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
    role: Role
    services: list[str] | None = Field(
        None,
        min_length=1,
        description="Limit the token to these services (default: every service).",
    )


class TokenPublic(BaseModel):
    name: str
    role: Role
    created_at: str
    created_by: str
    revoked_at: str | None
    services: list[str] | None = Field(None, description="None: every service.")


class TokenCreatedPublic(TokenPublic):
    token: str = Field(description="The token itself: shown once, only its hash is stored.")


class PresetPublic(BaseModel):
    name: str
    description: str
    patches: dict[str, dict[str, Any]]


class PresetVersionPublic(BaseModel):
    service: str
    version: int
    epoch: int
    etag: str


class PresetAppliedPublic(BaseModel):
    preset: str
    change_id: str | None
    versions: list[PresetVersionPublic]
    changed: bool = Field(True, description="False: the preset changed nothing (no version).")
    publication: Literal["published", "pending", "unchanged"]


class PresetServicePreview(BaseModel):
    service: str
    version: int = Field(description="The service's current version (0: its defaults).")
    etag: str = Field(description="The current version's ETag.")
    changed: bool = Field(description="False: the preset leaves this service as it is.")
    would_be_version: int | None = Field(
        description="The version applying the preset would store (null: unchanged)."
    )
    patch: list[dict[str, Any]] = Field(
        description="RFC 6902 operations from the current config to the preset's result; "
        'a changed secret: the mask as value and "secret": "changed".'
    )


class PresetPreviewPublic(BaseModel):
    preset: str
    changed: bool = Field(description="False: applying the preset would store nothing.")
    services: list[PresetServicePreview]
    compatible: bool = Field(description="Whether the cross-service rules accept the result.")
    violations: list[dict[str, Any]] = Field(description="The rules the result would break.")
    errors: list[dict[str, Any]] = Field(
        description="One error per field involved in a violation (loc: service, field...)."
    )


class DiffPublic(BaseModel):
    service: str
    from_: int = Field(alias="from")
    to: int
    patch: list[dict[str, Any]] = Field(
        description="RFC 6902 operations; a changed secret: the mask as value and "
        '"secret": "changed".'
    )


class AuditPublic(BaseModel):
    """One audit entry (see docs/manager.md, *Audit*)."""

    id: int
    at: str
    actor: str = Field(description="Token name, or 'cli' for the local command line.")
    action: str
    outcome: Literal["ok", "refused"]
    service: str | None
    version: int | None
    request_id: str | None
    reason: str | None
    detail: dict[str, Any]


class ImportPublic(BaseModel):
    epoch: int
    versions: list[PresetVersionPublic]
    publication: Literal["published", "pending"]


class CompatibilityPublic(BaseModel):
    compatible: bool
    versions: dict[str, int]
    violations: list[dict[str, Any]]
    errors: list[dict[str, Any]]


class ReadinessPublic(BaseModel):
    """``/readyz``: 200 when ready, 503 with the same body when not."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ready", "not ready"]
    detail: str | None = Field(description="Why it is not ready.")
    database: Literal["open", "closed"]
    storage: Literal["writable", "not writable"]
    storage_error: str | None
    schema_version: int | None
    broker: Literal["connected", "disconnected"]
    publisher: Literal["publishing", "standby"] = Field(
        "publishing",
        description="'standby': a PostgreSQL replica while another one holds the publisher "
        "lease (it accepts reads and writes; the other publishes them). Ready all the same.",
    )
    broker_error: str | None
    publisher_failure: str | None
    outbox_depth: int | None
    publication: Literal["pending", "up to date", "unknown"]
    epoch: int | None


class SyncInstancePublic(BaseModel):
    instance: str
    state: Literal["in_sync", "behind", "failed", "rejected", "offline", "retired"]
    status: str = Field(description="The instance's own report status.")
    version: int | None = Field(description="The version it runs (behind: the older one).")
    epoch: int | None
    reason: str | None = Field(description="Why it failed or rejected (a short code).")
    detail: str | None
    reported_at: str | None
    age_s: float = Field(description="Seconds since the manager received this report.")
    freshness: str | None = Field(
        None,
        description="What the instance says of its signed freshness record: `fresh`, "
        "`stale` (record expired or missing: it runs on its last good config) or `waiting`.",
    )
    forged: bool = Field(
        False, description="The latest report received for it failed verification."
    )
    forged_reason: str | None = Field(None, description="Why (a short code), when forged.")


class SyncServicePublic(BaseModel):
    service: str
    version: int
    epoch: int
    etag: str
    retired_at: str | None = Field(None, description="Set once the service was retired.")
    config_valid: bool = Field(description="False: the stored config fails today's model.")
    config_errors: list[dict[str, Any]]
    in_sync: bool
    instances: list[SyncInstancePublic]


class SyncSummaryPublic(BaseModel):
    services: int
    instances: int
    in_sync: int
    behind: int
    failed: int
    rejected: int
    offline: int
    retired: int = 0
    stale: int = Field(0, description="Instances whose freshness record is stale.")
    forged: int = Field(0, description="Instances whose latest report is forged.")
    invalid_configs: int


class SyncPublic(BaseModel):
    epoch: int
    services: list[SyncServicePublic]
    summary: SyncSummaryPublic


class SyncForcePublic(BaseModel):
    services: list[str] = Field(description="Services republished and asked to report.")
    publication: Literal["published", "pending"]


class RetiredPublic(BaseModel):
    service: str
    retired_at: str
    last_version: int = Field(description="The config instances keep running.")
    tombstone_version: int = Field(description="Version carried by the signed tombstone.")
    publication: Literal["published", "pending"]


class KeysetPublic(BaseModel):
    """The root-signed keyset in force (public parts)."""

    version: int
    issued_at: datetime
    expires_at: datetime
    key_ids: list[str] = Field(description="Keys services accept configs from.")
    root_key_id: str
    void_epochs_from: int | None = Field(
        description="Epochs at or above this one are void (root-signed floor reset)."
    )


class KeysPublic(BaseModel):
    """The signing key in use and the keyset services follow."""

    signing_key_id: str
    keyset: KeysetPublic | None = Field(
        description="Null when no root key is set up: services use their trust store file."
    )


class WhoamiPublic(BaseModel):
    """The calling token, for a UI to follow its rights."""

    name: str
    role: Role
    scopes: list[str] | None = Field(
        description="Services this token may act on; null means every service."
    )
