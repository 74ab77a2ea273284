"""API keys and roles."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime


class Role(StrEnum):
    """Who is calling; each role but admin and phone is bound to a region or a store."""

    ADMIN = "admin"
    REGIONAL_OPS = "regional_ops"  # one region's stores
    STORE_STAFF = "store_staff"  # one store
    KIOSK = "kiosk"  # one store, customer-facing subset
    INSTALLER = "installer"  # one region: provisions and tests nodes
    PHONE = "phone"  # one customer, by session token (never an API key)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: str = Field(primary_key=True, max_length=40)
    prefix: str = Field(unique=True, max_length=16)
    key_hash: str = Field(max_length=128)
    name: str = Field(max_length=120)
    role: str = Field(max_length=16)
    region_id: str | None = Field(None, foreign_key="region.id", max_length=64)
    store_id: str | None = Field(None, foreign_key="store.id", max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(None, sa_type=UtcDateTime)


class ApiKeyCreate(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [{"name": "Gulou counter", "role": "store_staff", "store_id": "fz-gulou"}]
        }
    )
    name: str = Field(min_length=1, max_length=120)
    role: Role
    region_id: str | None = None
    store_id: str | None = None


class ApiKeyPublic(SQLModel):
    id: str
    prefix: str
    name: str
    role: str
    region_id: str | None
    store_id: str | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyIssued(SQLModel):
    """Returned once when a key is created: ``key`` is never shown again."""

    api_key: ApiKeyPublic
    key: str
