"""``ConfigWriter``: every change to a config goes through here (API routes and presets).

A write: take the current version (or the model's defaults as version 0), build the new
values (whole document for PUT, RFC 7396 merge for PATCH), put back stored secrets where
the client sent the mask, validate with the service's model (strict JSON mode), check the
cross-service rules, encrypt the secrets, then store version + outbox row in one
transaction that also checks the version the client based its change on.

Group commit: the writer lock covers the planning only (read, validate, check, build the
audit entry). The planned change is then queued on the :class:`GroupCommitter`, the lock is
released, and the writer waits for its transaction, which it usually shares with other
writers' changes (one fsync for all). The next writer plans against the *planned* state (a
change queued but not yet committed counts as the current version of its service, and the
cross-service rules see it), so optimistic locking and the rules hold as if the writes ran
one by one; should a queued change fail to commit, a change planned on top of it fails its
own version check in the database (412). Each version is published only after its
transaction committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from config_lib import (
    MASK,
    BadCiphertext,
    check_ciphertexts,
    decrypt_secrets,
    encrypt_secrets,
    is_encrypted,
    mask_secrets,
)

from .diffs import redacted_diff
from .group_commit import GroupCommitter
from .keyring import KeyRing
from .merge_patch import merge_patch
from .metrics import Metrics
from .problems import Problem, validation_problem
from .registry import SchemaRegistry
from .store import (
    AuditEntry,
    ConfigStore,
    IdempotencyClaim,
    NewVersion,
    StorageError,
    StoredVersion,
    VersionConflict,
    WriteMember,
)

__all__ = [
    "CompatibilityCheck",
    "ConfigWriter",
    "CurrentConfig",
    "PlannedChange",
    "WriteContext",
    "WriteOutcome",
    "etag_for",
    "parse_if_match",
]

CompatibilityCheck = Callable[[Mapping[str, BaseModel], frozenset[str]], Problem | None]
"""Given every service's config as it would be after a change (and which services change),
return a 422 Problem naming the fields involved, or None when the rules hold."""


@dataclass(frozen=True, slots=True)
class CurrentConfig:
    service: str
    version: int  # 0: the model's defaults, nothing stored yet
    epoch: int
    values: dict[str, Any]  # secrets as ciphertext
    updated_at: str | None
    updated_by: str | None

    @property
    def masked(self) -> dict[str, Any]:
        result = mask_secrets(self.values)
        assert isinstance(result, dict)
        return result


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """A validated change, ready to store."""

    service: str
    expected_version: int
    model: BaseModel
    values: dict[str, Any]  # secrets as ciphertext
    # The documents in plaintext (decrypted once, for the comparison and the audit diff):
    # the one the change is based on and the new one. Never stored, logged or answered.
    base_plain: Any = field(default=None, repr=False, compare=False)
    plain: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    change: PlannedChange
    current: CurrentConfig  # after the write (before it, for a dry run)
    outbox_id: int | None  # None for a dry run or a write that changed nothing
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    changed: bool = True  # False: the document equals the current one; nothing stored


@dataclass(frozen=True, slots=True)
class WriteContext:
    """Who writes and how the write is recorded (audit entry, idempotency claim)."""

    actor: str
    request_id: str | None = None
    idempotency: IdempotencyClaim | None = None
    action: str = "write"
    detail: Mapping[str, Any] = field(default_factory=dict)


def etag_for(epoch: int, version: int) -> str:
    return f'"{epoch}.{version}"'


def parse_if_match(header: str | None, epoch: int) -> int:
    """The version named by an ``If-Match`` header: ``7``, ``"7"`` or our ETag ``"<epoch>.7"``.

    Missing → 428; unreadable → 400; an ETag of another epoch can never match → 412.
    """
    if header is None or not header.strip():
        raise Problem(
            428,
            "Precondition required",
            "send If-Match with the version your change is based on (GET returns it as ETag)",
            kind="precondition-required",
        )
    text = header.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    head, dot, tail = text.partition(".")
    try:
        if dot:
            tag_epoch, version = int(head), int(tail)
            if tag_epoch != epoch:
                return -1  # from another epoch: stale by definition
        else:
            version = int(text)
    except ValueError:
        raise Problem(
            400,
            "Bad If-Match",
            f"cannot read a version in If-Match {header!r}",
            kind="bad-if-match",
        ) from None
    if version < 0:
        raise Problem(400, "Bad If-Match", "a version is never negative", kind="bad-if-match")
    return version


def _plain(value: Any) -> Any:
    """Read-only mappings (presets) as plain JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _unmask(new: Any, plain: Any, stored: Any) -> Any:
    """Where the client sent the mask for a stored secret, use the stored secret."""
    if isinstance(new, str) and new == MASK and is_encrypted(stored):
        return plain
    if isinstance(new, dict) and isinstance(plain, dict) and isinstance(stored, dict):
        return {k: _unmask(v, plain.get(k), stored.get(k)) for k, v in new.items()}
    if isinstance(new, list) and isinstance(plain, list) and isinstance(stored, list):
        return [
            _unmask(v, plain[i] if i < len(plain) else None, stored[i] if i < len(stored) else None)
            for i, v in enumerate(new)
        ]
    return new


class ConfigWriter:
    """Reads current configs and applies validated changes (planned one at a time,
    committed in groups)."""

    def __init__(
        self,
        *,
        store: ConfigStore,
        registry: SchemaRegistry,
        keys: KeyRing,
        metrics: Metrics,
        notify: Callable[[Sequence[StoredVersion]], None],
        prepare: Callable[[str, int, int, dict[str, Any]], None] | None = None,
        compatibility: CompatibilityCheck | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.keys = keys
        self.metrics = metrics
        self._notify = notify
        self._prepare = prepare
        self.compatibility = compatibility
        self._lock = asyncio.Lock()
        self.lock = self._lock  # held by every change's planning (see exclusive())
        self._models: dict[str, tuple[int, int, BaseModel]] = {}  # validated current configs
        # Changes queued for a group commit, not committed yet: service -> (the config as
        # it will be, its model). The next change of the service is planned on top of it.
        self._planned: dict[str, tuple[CurrentConfig, BaseModel]] = {}
        self.committer = GroupCommitter(store, committed=self._committed)
        self._defaults: dict[str, tuple[type[BaseModel], BaseModel | None]] = {}
        # service -> (stored values, their plaintext) of the last change planned: the next
        # change of the service is based on exactly these values (the same object).
        self._plain: dict[str, tuple[dict[str, Any], Any]] = {}
        # service -> ((version, epoch), errors of the stored config under today's model)
        self._stored_errors: dict[str, tuple[tuple[int, int], list[dict[str, Any]] | None]] = {}

    # -- reading -------------------------------------------------------------------------
    def model(self, service: str) -> type[BaseModel]:
        model = self.registry.get(service)
        if model is None:
            raise Problem(
                404,
                "Unknown service",
                f"no schema is registered for service {service!r}",
                kind="unknown-service",
                service=service,
            )
        return model

    async def current(self, service: str, *, for_write: bool = False) -> CurrentConfig:
        """The stored config, or the model's defaults as version 0.

        A model with required fields has no defaults: reading it before the first write is
        a 404, while a write (``for_write``) starts from an empty version 0.
        """
        self.model(service)
        if for_write and service in self.store.retired():
            raise Problem(
                409,
                "Service retired",
                f"{service} was retired (DELETE) at {self.store.retired()[service]}; "
                "it takes no more changes",
                kind="service-retired",
                service=service,
            )
        if for_write:
            planned = self._planned.get(service)
            if planned is not None:
                return planned[0]
        stored = await self.store.current(service)
        epoch = await self.store.epoch()
        if stored is not None:
            return CurrentConfig(
                service, stored.version, epoch, stored.values, stored.created_at, stored.created_by
            )
        defaults = self.registry.defaults(service)
        if defaults is None and for_write:
            return CurrentConfig(service, 0, epoch, {}, None, None)
        if defaults is None:
            raise Problem(
                404,
                "No config yet",
                f"{service} has no stored config and its model has required fields: PUT one "
                "with If-Match: 0",
                kind="no-config",
                service=service,
                version=0,
            )
        values = encrypt_secrets(defaults, service=service, key=self.keys.data_key(service))
        return CurrentConfig(service, 0, epoch, values, None, None)

    def _default_model(self, service: str) -> BaseModel | None:
        """The model's defaults as an instance (cached: the rules only read it)."""
        model = self.model(service)
        cached = self._defaults.get(service)
        if cached is None or cached[0] is not model:
            cached = (model, self.registry.defaults(service))
            self._defaults[service] = cached
        return cached[1]

    def current_model(self, current: CurrentConfig) -> BaseModel:
        """``current`` as a validated model instance (cached per service and version)."""
        planned = self._planned.get(current.service)
        if planned is not None and planned[0] is current:
            return planned[1]
        cached = self._models.get(current.service)
        if cached is not None and cached[:2] == (current.version, current.epoch):
            return cached[2]
        plain = decrypt_secrets(
            current.values, service=current.service, keys=self.keys.decrypt_keys(current.service)
        )
        model = self.model(current.service).model_validate(plain)
        if current.version > 0:
            self._models[current.service] = (current.version, current.epoch, model)
        return model

    async def stored_errors(self, service: str) -> list[dict[str, Any]] | None:
        """Why the service's current stored config fails today's model (strict JSON mode),
        or None when it passes (or nothing is stored). Cached per version and epoch."""
        stored = await self.store.current(service)
        if stored is None:
            return None
        key = (stored.version, stored.epoch)
        cached = self._stored_errors.get(service)
        if cached is not None and cached[0] == key:
            return cached[1]
        plain = decrypt_secrets(
            stored.values, service=service, keys=self.keys.decrypt_keys(service)
        )
        errors: list[dict[str, Any]] | None = None
        try:
            self.model(service).model_validate_json(json.dumps(plain), strict=True)
        except ValidationError as exc:
            errors = validation_problem(exc, service).extra["errors"]
        self._stored_errors[service] = (key, errors)
        return errors

    async def _explain_outdated(self, service: str, problem: Problem) -> None:
        """A refused write to a service whose stored config predates today's model: say that
        the change must fix those fields first."""
        if problem.kind != "invalid-config":
            return
        outdated = await self.stored_errors(service)
        if not outdated:
            return
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "(root)" for e in outdated)
        problem.extra["outdated_fields"] = [e["loc"] for e in outdated]
        problem.detail = (
            f"{problem.detail}; the stored config no longer passes today's model "
            f"({fields}): the change must fix these fields first"
        )

    async def invalid_configs(self) -> dict[str, list[dict[str, Any]]]:
        """Every service whose current stored config no longer passes its model today."""
        found: dict[str, list[dict[str, Any]]] = {}
        for service in self.registry:
            errors = await self.stored_errors(service)
            if errors:
                found[service] = errors
        return found

    # -- building ------------------------------------------------------------------------
    def plan(
        self,
        current: CurrentConfig,
        *,
        document: Any = None,
        patch: Any = None,
        expected_version: int | None = None,
    ) -> PlannedChange:
        """Validate a whole document (PUT) or a merge patch (PATCH) against ``current``."""
        service = current.service
        model = self.model(service)
        plain = self._plaintext(service, current.values)
        if patch is not None:
            if not isinstance(patch, dict):
                raise Problem(
                    422,
                    "Invalid merge patch",
                    "a config merge patch must be a JSON object",
                    kind="invalid-config",
                    service=service,
                    errors=[{"loc": [], "msg": "expected a JSON object", "type": "dict_type"}],
                )
            document = merge_patch(plain, patch)
        if not isinstance(document, dict):
            raise Problem(
                422,
                "Invalid configuration",
                f"{service}: a config must be a JSON object",
                kind="invalid-config",
                service=service,
                errors=[{"loc": [], "msg": "expected a JSON object", "type": "dict_type"}],
            )
        document = _unmask(document, plain, current.values)
        try:
            instance = model.model_validate_json(json.dumps(document), strict=True)
        except ValidationError as exc:
            raise validation_problem(exc, service) from None
        values = encrypt_secrets(instance, service=service, key=self.keys.data_key(service))
        try:
            check_ciphertexts(values)
        except BadCiphertext as exc:
            # A plain object with a member named "encrypted" would be read as a secret's
            # ciphertext by every receiver (docs/protocol.md, "Secret fields"): refuse it here
            # rather than sign a config that every service would refuse.
            raise Problem(
                422,
                "Invalid configuration",
                f"{service}: a member named 'encrypted' is reserved for secrets' ciphertext "
                f"objects ({exc})",
                kind="invalid-config",
                service=service,
                errors=[{"loc": [], "msg": str(exc), "type": "reserved_member"}],
            ) from None
        return PlannedChange(
            service,
            current.version if expected_version is None else expected_version,
            instance,
            values,
            base_plain=plain,
            plain=decrypt_secrets(values, service=service, keys=self.keys.decrypt_keys(service)),
        )

    def _plaintext(self, service: str, values: dict[str, Any]) -> Any:
        """``values`` decrypted; the last planned change's are kept (the next change of
        the service is planned on exactly that object)."""
        cached = self._plain.get(service)
        if cached is not None and cached[0] is values:
            return cached[1]
        return decrypt_secrets(values, service=service, keys=self.keys.decrypt_keys(service))

    async def check_compatibility(self, changes: Sequence[PlannedChange]) -> None:
        """Run the cross-service rules on the configs as they would be after ``changes``."""
        if self.compatibility is None:
            return
        after: dict[str, BaseModel] = {}
        epoch = await self.store.epoch()
        for service in self.registry:
            planned = self._planned.get(service)
            if planned is not None:  # queued for commit: the state the rules must see
                after[service] = planned[1]
                continue
            stored = await self.store.current(service)
            if stored is None:
                default = self._default_model(service)
                if default is not None:  # else: no defaults, nothing to check against
                    after[service] = default
                continue
            current = CurrentConfig(
                service, stored.version, epoch, stored.values, stored.created_at, stored.created_by
            )
            try:
                after[service] = self.current_model(current)
            except ValidationError:
                continue  # stored under an older model (see invalid_configs): cannot judge
        for change in changes:
            after[change.service] = change.model
        problem = self.compatibility(after, frozenset(c.service for c in changes))
        if problem is not None:
            raise problem

    # -- writing -------------------------------------------------------------------------
    def same(self, current: CurrentConfig, change: PlannedChange) -> bool:
        """Whether ``change`` stores exactly the current document (compared in plaintext)."""
        if current.version == 0:
            return False  # nothing stored yet: the first write always stores
        if change.base_plain is not None:  # planned on ``current``: both decrypted already
            return bool(change.base_plain == change.plain)
        key = self.keys.decrypt_keys(current.service)
        old = decrypt_secrets(current.values, service=current.service, keys=key)
        new = decrypt_secrets(change.values, service=current.service, keys=key)
        return bool(old == new)

    def diff(self, service: str, old: dict[str, Any], new: dict[str, Any]) -> list[Any]:
        """RFC 6902 patch from ``old`` to ``new`` (stored forms), secrets redacted."""
        return redacted_diff(service, old, new, self.keys.decrypt_keys(service))

    def change_diff(self, current: CurrentConfig, change: PlannedChange) -> list[Any]:
        """:meth:`diff` from ``current`` to ``change`` (with the plaintexts ``plan`` made)."""
        return redacted_diff(
            change.service,
            current.values,
            change.values,
            self.keys.decrypt_keys(change.service),
            plain=(change.base_plain, change.plain),
        )

    async def refused(
        self, ctx: WriteContext, problem: Problem, services: Sequence[str | None]
    ) -> None:
        """Record a refused change in the audit log (never raises for the caller's sake)."""
        reason = f"{problem.status} {problem.title}" + (
            f": {problem.detail}" if problem.detail else ""
        )
        detail: dict[str, Any] = dict(ctx.detail)
        errors = problem.extra.get("errors")
        if errors is not None:
            detail["errors"] = errors
        with contextlib.suppress(StorageError):  # the refusal is answered all the same
            await self.store.add_audit(
                *(
                    AuditEntry(
                        actor=ctx.actor,
                        action=ctx.action,
                        outcome="refused",
                        service=service,
                        request_id=ctx.request_id,
                        reason=reason[:1000],
                        detail=detail,
                    )
                    for service in (list(services) or [None])
                )
            )

    async def write(
        self,
        service: str,
        *,
        expected_version: int,
        document: Any = None,
        patch: Any = None,
        actor: str,
        dry_run: bool = False,
        ctx: WriteContext | None = None,
    ) -> WriteOutcome:
        """Plan and (unless ``dry_run``) store one change. Raises Problem on refusal.

        A change that leaves the document as it is stores nothing (``changed`` False).
        """
        ctx = ctx or WriteContext(actor)
        queued = time.perf_counter()
        async with self._lock:  # planning only: the commit is awaited after releasing it
            started = time.perf_counter()
            current = await self.current(service, for_write=True)
            try:
                # The content is checked first, the precondition after it (RFC 9110 13.2.1:
                # preconditions are evaluated after the normal request checks).
                try:
                    change = self.plan(
                        current, document=document, patch=patch, expected_version=expected_version
                    )
                    await self.check_compatibility([change])
                except Problem as problem:
                    self.metrics.writes.labels(service=service, result="rejected").inc()
                    await self._explain_outdated(service, problem)
                    raise
                if expected_version != current.version:
                    raise self._conflict(service, expected_version, current)
            except Problem as problem:
                if not dry_run:
                    await self.refused(ctx, problem, [service])
                raise
            validated = time.perf_counter()
            timings = {"lock": started - queued, "validate": validated - started}
            if dry_run:
                return WriteOutcome(change, current, None, timings)
            if self.same(current, change):
                await self.store.record_unchanged(
                    ctx.idempotency,
                    [
                        AuditEntry(
                            actor=ctx.actor,
                            action=ctx.action,
                            service=service,
                            version=current.version,
                            request_id=ctx.request_id,
                            reason="unchanged",
                            detail={**ctx.detail, "diff": []},
                        )
                    ],
                    [(service, current.version)],
                )
                return WriteOutcome(change, current, None, timings, changed=False)
            audit = AuditEntry(
                actor=ctx.actor,
                action=ctx.action,
                service=service,
                version=current.version + 1,
                request_id=ctx.request_id,
                detail={**ctx.detail, "diff": self.change_diff(current, change)},
            )
            committing = self._enqueue([change], actor, [audit], ctx.idempotency)
        stored = (await self._committed_result(committing, [change]))[0]
        timings["commit"] = time.perf_counter() - validated
        after = CurrentConfig(
            service, stored.version, stored.epoch, stored.values, stored.created_at, actor
        )
        return WriteOutcome(change, after, stored.outbox_id, timings)

    async def rollback(
        self, service: str, *, to_version: int, expected_version: int, ctx: WriteContext
    ) -> WriteOutcome:
        """A new version whose document equals ``to_version``'s, validated as of today."""
        self.model(service)
        target = await self.store.version(service, to_version)
        if target is None:
            raise Problem(
                404,
                "No such version",
                f"{service} has no version {to_version}",
                kind="unknown-version",
                service=service,
                version=to_version,
            )
        plain = decrypt_secrets(
            target.values, service=service, keys=self.keys.decrypt_keys(service)
        )
        ctx = WriteContext(
            ctx.actor, ctx.request_id, ctx.idempotency, "rollback", {"to_version": to_version}
        )
        try:
            return await self.write(
                service,
                expected_version=expected_version,
                document=plain,
                actor=ctx.actor,
                ctx=ctx,
            )
        except Problem as problem:
            if problem.status == 422 and problem.kind in ("invalid-config", "incompatible-config"):
                raise Problem(
                    422,
                    "Version no longer valid",
                    f"{service} version {to_version} does not pass today's checks: "
                    f"{problem.detail or problem.title}",
                    kind="rollback-invalid",
                    service=service,
                    to_version=to_version,
                    cause=problem.kind,
                    errors=problem.extra.get("errors", []),
                ) from None
            raise

    async def write_patches(
        self,
        patches: Mapping[str, Any],
        *,
        actor: str,
        ctx: WriteContext | None = None,
    ) -> list[StoredVersion]:
        """Apply one merge patch per service as ONE transaction: all commit, or none.

        Each patch applies to that service's current config; the cross-service rules see
        every patched config together. Services the patch leaves unchanged get no new
        version (an empty list: nothing changed).
        """
        ctx = ctx or WriteContext(actor)
        async with self._lock:
            changes: list[PlannedChange] = []
            audit: list[AuditEntry] = []
            try:
                for service in sorted(patches):
                    current = await self.current(service, for_write=True)
                    change = self.plan(current, patch=_plain(patches[service]))
                    if self.same(current, change):
                        continue
                    changes.append(change)
                    audit.append(
                        AuditEntry(
                            actor=ctx.actor,
                            action=ctx.action,
                            service=service,
                            version=current.version + 1,
                            request_id=ctx.request_id,
                            detail={
                                **ctx.detail,
                                "diff": self.change_diff(current, change),
                            },
                        )
                    )
                await self.check_compatibility(changes)
            except Problem as problem:
                for service in patches:
                    self.metrics.writes.labels(service=service, result="rejected").inc()
                await self.refused(ctx, problem, sorted(patches))
                raise
            if not changes:
                await self.store.record_unchanged(
                    ctx.idempotency,
                    [
                        AuditEntry(
                            actor=ctx.actor,
                            action=ctx.action,
                            request_id=ctx.request_id,
                            reason="unchanged",
                            detail=dict(ctx.detail),
                        )
                    ],
                    [(s, (await self.current(s, for_write=True)).version) for s in sorted(patches)],
                )
                return []
            committing = self._enqueue(changes, actor, audit, ctx.idempotency)
        return await self._committed_result(committing, changes)

    async def import_documents(
        self, documents: Mapping[str, dict[str, Any]], *, ctx: WriteContext
    ) -> list[StoredVersion]:
        """Store each service's document (stored form) as its new version, in ONE transaction
        that also bumps the epoch; everything is validated first (all or nothing)."""
        async with self.exclusive():
            changes: list[PlannedChange] = []
            audit: list[AuditEntry] = []
            try:
                for service in sorted(documents):
                    self.model(service)
                    try:
                        plain = decrypt_secrets(
                            documents[service],
                            service=service,
                            keys=self.keys.decrypt_keys(service),
                        )
                    except Exception as exc:
                        raise Problem(
                            422,
                            "Cannot import secrets",
                            f"{service}: the export's secrets do not decrypt with this "
                            f"manager's master key ({type(exc).__name__})",
                            kind="import-secrets",
                            service=service,
                        ) from None
                    current = await self.current(service, for_write=True)
                    change = self.plan(current, document=plain)
                    changes.append(change)
                    audit.append(
                        AuditEntry(
                            actor=ctx.actor,
                            action="import",
                            service=service,
                            version=current.version + 1,
                            request_id=ctx.request_id,
                            detail={
                                **ctx.detail,
                                "diff": self.change_diff(current, change),
                            },
                        )
                    )
                await self.check_compatibility(changes)
            except Problem as problem:
                await self.refused(
                    WriteContext(ctx.actor, ctx.request_id, None, "import", ctx.detail),
                    problem,
                    [],
                )
                raise
            return await self._store(changes, ctx.actor, audit, None, bump_epoch=True)

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the writer lock with no change queued for commit (a retirement, an import)."""
        async with self._lock:
            await self.committer.idle()
            yield

    async def aclose(self) -> None:
        """Let the changes queued for commit commit (before the store closes)."""
        await self.committer.aclose()

    def _enqueue(
        self,
        changes: Sequence[PlannedChange],
        actor: str,
        audit: Sequence[AuditEntry] = (),
        idempotency: IdempotencyClaim | None = None,
    ) -> asyncio.Future[list[StoredVersion]]:
        """Queue ``changes`` for the next group commit (called with the writer lock held).

        The commit runs in the committer's task and its outcome is handled there, so a
        client hanging up (cancelling the awaiting request) can neither cut the write short
        nor leave a committed version unannounced to the publisher.
        """
        member = WriteMember(
            tuple(NewVersion(c.service, c.expected_version, c.values) for c in changes),
            actor,
            tuple(audit),
            idempotency,
        )
        future = self.committer.commit(member)
        epoch = self.store.epoch_now
        planned: list[tuple[str, tuple[CurrentConfig, BaseModel]]] = []
        for change in changes:
            after = CurrentConfig(
                change.service, change.expected_version + 1, epoch, change.values, None, actor
            )
            entry = (after, change.model)
            self._planned[change.service] = entry
            if change.plain is not None:
                self._plain[change.service] = (change.values, change.plain)
            planned.append((change.service, entry))
        future.add_done_callback(lambda _: self._unplan(planned))
        if self._prepare is not None:
            # Sign the envelopes while the database thread commits: scheduled behind the
            # committer's next step, which hands the whole transaction to that thread (whose
            # statements and fsync run without the GIL). Used only if exactly these values
            # are committed as that version.
            loop = asyncio.get_running_loop()
            for change in changes:
                loop.call_soon(
                    self._prepare, change.service, change.expected_version + 1, epoch, change.values
                )
        return future

    def _unplan(self, planned: Sequence[tuple[str, tuple[CurrentConfig, BaseModel]]]) -> None:
        for service, entry in planned:
            if self._planned.get(service) is entry:
                del self._planned[service]

    async def _committed_result(
        self,
        committing: asyncio.Future[list[StoredVersion]],
        changes: Sequence[PlannedChange],
    ) -> list[StoredVersion]:
        try:
            return await asyncio.shield(committing)
        except VersionConflict as exc:
            current = await self.current(exc.service, for_write=True)
            raise self._conflict(exc.service, exc.expected, current) from None
        except StorageError:
            # Nothing was written (one transaction); answered 503 with Retry-After.
            for change in changes:
                self.metrics.writes.labels(service=change.service, result="unavailable").inc()
            raise

    async def _store(
        self,
        changes: Sequence[PlannedChange],
        actor: str,
        audit: Sequence[AuditEntry] = (),
        idempotency: IdempotencyClaim | None = None,
        *,
        bump_epoch: bool = False,
    ) -> list[StoredVersion]:
        """A transaction of its own, with the writer lock held and nothing queued (an
        import: it bumps the epoch, so it shares no transaction with other changes)."""
        new = [NewVersion(c.service, c.expected_version, c.values) for c in changes]
        member = WriteMember(tuple(new), actor, tuple(audit), idempotency)
        writing = asyncio.ensure_future(
            self.store.write_group([member], bump_epoch=bump_epoch)
        )
        writing.add_done_callback(lambda task: self._stored(member, task))
        try:
            [outcome] = await asyncio.shield(writing)
        except StorageError:
            for change in changes:
                self.metrics.writes.labels(service=change.service, result="unavailable").inc()
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _stored(
        self,
        member: WriteMember,
        task: asyncio.Future[list[list[StoredVersion] | BaseException]],
    ) -> None:
        if task.cancelled() or task.exception() is not None:
            return  # nothing was written; the awaiting request reports the error
        [outcome] = task.result()
        if not isinstance(outcome, BaseException):
            self._committed(member, outcome)

    def _committed(self, member: WriteMember, stored: list[StoredVersion]) -> None:
        """A transaction committed ``stored``: cache the models, count, publish."""
        for item in stored:
            planned = self._planned.get(item.service)
            if planned is not None and planned[0].values is item.values:
                self._models[item.service] = (item.version, item.epoch, planned[1])
            self.metrics.writes.labels(service=item.service, result="ok").inc()
        self._notify(stored)

    def _conflict(self, service: str, expected: int, current: CurrentConfig) -> Problem:
        self.metrics.writes.labels(service=service, result="conflict").inc()
        return Problem(
            412,
            "Version conflict",
            f"{service}: your change is based on version {expected}, the current version is "
            f"{current.version}; GET it, reapply your change and retry",
            kind="version-conflict",
            headers={"ETag": etag_for(current.epoch, current.version)},
            service=service,
            expected_version=expected,
            current_version=current.version,
            current_epoch=current.epoch,
            etag=etag_for(current.epoch, current.version),
        )
