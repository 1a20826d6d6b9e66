"""config_lib: receive signed configuration over MQTT, verify it and hot-apply it.

The public API is exactly the names in ``__all__``; every module starting with ``_`` is
private.
"""

from ._backoff import Backoff
from ._change import ConfigChange, ConfigSource
from ._client import ConfigLibrary
from ._envelope import (
    DEFAULT_MAX_BYTES,
    FORMAT_VERSION,
    Envelope,
    Limits,
    Position,
    canonical_bytes,
    sign_envelope,
    verify_envelope,
)
from ._exceptions import (
    BadIssuedAt,
    BadSignature,
    ConfigLibError,
    DigestMismatch,
    Duplicate,
    EnvelopeError,
    EnvelopeTooLarge,
    FreshnessError,
    InvalidConfig,
    InvalidName,
    KeyFileError,
    LibraryStateError,
    MalformedEnvelope,
    NoConfig,
    Outdated,
    Rollback,
    SecretError,
    ServiceMismatch,
    StaleEnvelope,
    UnknownKey,
    Unsigned,
    UnsupportedFormat,
)
from ._files import write_atomic
from ._freshness import (
    FreshnessGate,
    FreshnessRecord,
    FreshnessState,
    envelope_digest,
    sign_freshness,
    verify_freshness,
)
from ._keys import (
    DataKey,
    SigningKey,
    TrustStore,
    derive_data_key,
    key_id_for,
    load_data_key,
    load_master_key,
    load_or_create_master_key,
    load_or_create_signing_key,
    load_signing_key,
    save_data_key,
)
from ._metrics import ConfigMetrics, prometheus_collector
from ._mqtt import MqttEndpoint
from ._pipeline import Accepted, ConfigPipeline
from ._report import AppliedReport
from ._secrets import MASK, decrypt_secrets, encrypt_secrets, is_encrypted, mask_secrets
from ._settings import LibrarySettings, default_instance_id
from ._sources import env_prefix
from ._tasks import stop_tasks
from ._threaded import ThreadedConfig, initialize_and_subscribe, sync_module_constants
from ._topics import (
    applied_topic,
    applied_wildcard,
    freshness_topic,
    parse_applied_topic,
    parse_updated_topic,
    updated_topic,
    validate_name,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMAT_VERSION",
    "MASK",
    "Accepted",
    "AppliedReport",
    "Backoff",
    "BadIssuedAt",
    "BadSignature",
    "ConfigChange",
    "ConfigLibError",
    "ConfigLibrary",
    "ConfigMetrics",
    "ConfigPipeline",
    "ConfigSource",
    "DataKey",
    "DigestMismatch",
    "Duplicate",
    "Envelope",
    "EnvelopeError",
    "EnvelopeTooLarge",
    "FreshnessError",
    "FreshnessGate",
    "FreshnessRecord",
    "FreshnessState",
    "InvalidConfig",
    "InvalidName",
    "KeyFileError",
    "LibrarySettings",
    "LibraryStateError",
    "Limits",
    "MalformedEnvelope",
    "MqttEndpoint",
    "NoConfig",
    "Outdated",
    "Position",
    "Rollback",
    "SecretError",
    "ServiceMismatch",
    "SigningKey",
    "StaleEnvelope",
    "ThreadedConfig",
    "TrustStore",
    "UnknownKey",
    "Unsigned",
    "UnsupportedFormat",
    "applied_topic",
    "applied_wildcard",
    "canonical_bytes",
    "decrypt_secrets",
    "default_instance_id",
    "derive_data_key",
    "encrypt_secrets",
    "env_prefix",
    "envelope_digest",
    "freshness_topic",
    "initialize_and_subscribe",
    "is_encrypted",
    "key_id_for",
    "load_data_key",
    "load_master_key",
    "load_or_create_master_key",
    "load_or_create_signing_key",
    "load_signing_key",
    "mask_secrets",
    "parse_applied_topic",
    "parse_updated_topic",
    "prometheus_collector",
    "save_data_key",
    "sign_envelope",
    "sign_freshness",
    "stop_tasks",
    "sync_module_constants",
    "updated_topic",
    "validate_name",
    "verify_envelope",
    "verify_freshness",
    "write_atomic",
]
