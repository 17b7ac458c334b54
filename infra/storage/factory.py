from __future__ import annotations

from infra.objects import UPLOAD_RETENTION_DAYS, UPLOADS_PREFIX
from infra.settings import Settings
from infra.storage.base import ObjectStore
from infra.storage.local import LocalStore, UrlSigner
from infra.storage.s3 import S3Store

__all__ = ["open_store"]


def open_store(settings: Settings) -> ObjectStore:
    if settings.storage == "local":
        assert settings.url_signing_secret is not None  # Settings enforces it
        return LocalStore(
            settings.local_storage_dir,
            UrlSigner(settings.url_signing_secret, settings.public_base_url),
            settings.cdn_base_url,
        )
    return S3Store(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        bucket=settings.s3_bucket,
        region=settings.s3_region,
        secure=settings.s3_secure,
        public_endpoint=settings.s3_public_endpoint,
        public_secure=settings.s3_public_secure,
        cors_origins=settings.cors_origins,
        cdn_base_url=settings.cdn_base_url,
        expire=(UPLOADS_PREFIX, UPLOAD_RETENTION_DAYS),
    )
