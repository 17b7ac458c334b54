"""Object storage behind one small interface: S3 (MinIO, AWS, any S3 API) or a local directory."""

from infra.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    PresignedUpload,
    StorageUnavailable,
)
from infra.storage.factory import open_store

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "PresignedUpload",
    "StorageUnavailable",
    "open_store",
]
