"""``POST /v1/assets``: an upload URL for a watermark image, stored in the client's own asset space.
Specs then name it by key (``{"op": "watermark", "image": "brand/logo.png"}``)."""

from __future__ import annotations

import contextlib
from typing import Annotated

import msgspec
from litestar import post
from litestar.params import JSONBody

from control_plane.api.openapi import DocumentedAs, doc
from control_plane.api.views import UploadView, upload_view
from control_plane.auth.principal import PrincipalDep, needs
from control_plane.deps import ApiDepsDep
from control_plane.jobflow.intake import url_expiry
from control_plane.problems import Unprocessable
from infra.objects import asset_key, delete_derived
from pipeline.dsl.steps import ASSET_KEY_RULE, AssetKey
from pipeline.errors import FieldError

__all__ = ["AssetUpload", "create_asset_upload"]


class AssetRequest(msgspec.Struct, forbid_unknown_fields=True):
    # Checked in the handler against AssetKey, so a bad key is a 422 naming `$.key` like any
    # other invalid field (Litestar's own validation would answer a bare 400).
    key: Annotated[str, DocumentedAs(AssetKey)]


class AssetUpload(msgspec.Struct):
    key: str
    upload: UploadView


MAX_ASSET_BYTES = 5 * 1024 * 1024


@post(
    "/v1/assets",
    status_code=201,
    tags=["assets"],
    operation_id="createAssetUpload",
    summary="Get an upload URL for a watermark image",
    opt=doc(raises=[Unprocessable]) | needs("assets:write"),
)
async def create_asset_upload(deps: ApiDepsDep, principal: PrincipalDep, data: JSONBody[AssetRequest]) -> AssetUpload:
    """Presigned URLs to upload an image (at most 5 MB) under `key` in this client's own asset
    space; job specs then name it (`{"op": "watermark", "image": "<key>"}`). Uploading to the same
    key again replaces it (and drops the images signed URLs rendered from it). A key that is not a
    plain relative path is 422 `invalid_asset_key`."""
    try:
        msgspec.convert(data.key, AssetKey)
    except msgspec.ValidationError:
        raise Unprocessable(
            "invalid asset key", code="invalid_asset_key", errors=[FieldError("$.key", "must be " + ASSET_KEY_RULE)]
        ) from None
    object_key = asset_key(principal.client.id, data.key)
    cap = min(MAX_ASSET_BYTES, deps.settings.max_source_bytes)
    # Best effort: whatever is left, or rendered again before the upload lands, goes at the next
    # URL render that sees the new version (infra/objects.py, forget_replaced).
    with contextlib.suppress(Exception):
        await delete_derived(deps.store, principal.client.id, "asset", data.key)
    return AssetUpload(data.key, upload_view(deps.store, object_key, expires=url_expiry(deps), max_bytes=cap))
