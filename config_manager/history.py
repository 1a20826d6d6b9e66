"""Hash-chained history and signed exports (pure functions: the manager and ``configctl``).

Every stored version row carries two hashes (docs/manager.md, *Hash-chained history*):

* ``prev_hash``: the ``row_hash`` of the version row stored just before it, whatever its
  service (the chain follows the order of storage); ``GENESIS`` (64 zeros) for the first;
* ``row_hash``: ``sha256(RFC 8785 canonical JSON of {"service", "version", "epoch",
  "values", "created_at", "created_by", "prev_hash"})`` in lowercase hex, where ``values``
  is the document as stored (secrets as their ciphertext objects).

An export lists the rows in chain order and a ``head`` (last ``row_hash``, row count, epoch,
time) signed with the manager's Ed25519 key over the head's canonical JSON. Changing,
removing, reordering or truncating a row breaks a hash, the linkage, the count or the head.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidSignature

from config_lib import ConfigLibError, SigningKey, TrustStore, UnknownKey, canonical_bytes

__all__ = [
    "EXPORT_FORMAT",
    "GENESIS",
    "ChainReport",
    "row_hash",
    "sign_head",
    "verify_export",
]

GENESIS: Final = "0" * 64
EXPORT_FORMAT: Final = "signed-config-export/1"
_ROW_FIELDS: Final = ("service", "version", "epoch", "values", "created_at", "created_by")


def row_hash(
    *,
    service: str,
    version: int,
    epoch: int,
    values: Mapping[str, Any],
    created_at: str,
    created_by: str,
    prev_hash: str,
) -> str:
    """The ``row_hash`` of one version row (see the module docstring)."""
    content = {
        "service": service,
        "version": version,
        "epoch": epoch,
        "values": values,
        "created_at": created_at,
        "created_by": created_by,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_bytes(content)).hexdigest()


def sign_head(head: Mapping[str, Any], key: SigningKey) -> dict[str, str]:
    """The ``signature`` member of an export: Ed25519 over the head's canonical JSON."""
    return {
        "alg": "Ed25519",
        "key_id": key.key_id,
        "value": base64.b64encode(key.sign(canonical_bytes(dict(head)))).decode(),
    }


@dataclass
class ChainReport:
    """What ``verify_export`` found: ``ok`` only when ``problems`` is empty."""

    rows: int = 0
    history: str = "full"
    head: str | None = None
    key_id: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _where(row: Mapping[str, Any], index: int) -> str:
    return f"row {index} ({row.get('service')!s} v{row.get('version')!s})"


def verify_export(doc: Any, trust: TrustStore) -> ChainReport:
    """Check an export offline: signature of the head, every row's hash, the linkage.

    A ``current`` export (one row per service) cannot show the linkage; its rows' own
    hashes and the signed head are still checked.
    """
    report = ChainReport()
    if not isinstance(doc, Mapping) or doc.get("format") != EXPORT_FORMAT:
        report.problems.append(f"not a {EXPORT_FORMAT} document")
        return report
    head = doc.get("head")
    signature = doc.get("signature")
    rows = doc.get("versions")
    if not isinstance(head, Mapping) or not isinstance(signature, Mapping):
        report.problems.append("the export has no signed head")
        return report
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
        report.problems.append("the export has no version list")
        return report
    report.history = str(doc.get("history", "full"))
    report.rows = len(rows)
    report.head = str(head.get("row_hash"))
    report.key_id = str(signature.get("key_id"))
    # 1. the head is signed by a trusted key
    try:
        public = trust.get(str(signature.get("key_id")))
        public.verify(
            base64.b64decode(str(signature.get("value")), validate=True),
            canonical_bytes(dict(head)),
        )
    except (UnknownKey, KeyError):
        report.problems.append(
            f"the head's signature does not verify: key {report.key_id!r} is not trusted"
        )
    except (ConfigLibError, ValueError, InvalidSignature):
        report.problems.append("the head's signature does not verify")
    if head.get("history") != report.history:
        report.problems.append("the head does not cover this kind of export")
    # 2. every row's own hash, and (full history) the linkage
    previous = GENESIS
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping) or any(name not in row for name in _ROW_FIELDS):
            report.problems.append(f"row {index} is not a version row")
            continue
        try:
            expected = row_hash(
                **{name: row[name] for name in _ROW_FIELDS},
                prev_hash=str(row.get("prev_hash")),
            )
        except (TypeError, ValueError) as exc:
            report.problems.append(f"{_where(row, index)}: cannot hash ({exc})")
            continue
        if expected != row.get("row_hash"):
            report.problems.append(f"{_where(row, index)}: content does not match its hash")
        if report.history == "full" and row.get("prev_hash") != previous:
            report.problems.append(
                f"{_where(row, index)}: does not follow the row before it "
                "(a row was removed, inserted or reordered)"
            )
        previous = str(row.get("row_hash"))
    # 3. nothing cut off after the last row
    if report.history == "full":
        if head.get("count") != len(rows):
            report.problems.append(
                f"the signed head counts {head.get('count')} rows, the export holds {len(rows)}"
            )
        if head.get("row_hash") != (previous if rows else GENESIS):
            report.problems.append("the last row is not the signed head (truncated or extended)")
    return report
