"""Test-only config models registered programmatically (unique service names per test)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class DemoNested(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, ge=0.0, le=1.0)


class DemoConfig(BaseModel):
    """A small model with every kind of field the manager must handle, a secret included."""

    model_config = ConfigDict(extra="forbid")

    rate: int = Field(16000, ge=8000, le=48000)
    label: str = Field("demo", max_length=200)
    api_key: SecretStr = SecretStr("default-api-key-0000")
    nested: DemoNested = Field(default_factory=DemoNested)
    tags: list[str] = Field(default_factory=list)


class StricterDemo(BaseModel):
    """DemoConfig as a later release defines it: rates above 24000 are no longer allowed."""

    model_config = ConfigDict(extra="forbid")

    rate: int = Field(16000, ge=8000, le=24000)
    label: str = Field("demo", max_length=200)
    api_key: SecretStr = SecretStr("default-api-key-0000")
    nested: dict[str, float] = Field(default_factory=lambda: {"threshold": 0.5})
    tags: list[str] = Field(default_factory=list)
