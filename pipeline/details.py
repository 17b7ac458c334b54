"""The source described (a job's `info`): the engine's answer, carried by the worker into the job
result and its webhook. Plain structs, so the worker and the API read them without libvips."""

from __future__ import annotations

import msgspec

__all__ = ["Camera", "Location", "SourceDetails"]


class Location(msgspec.Struct, frozen=True):
    latitude: float
    longitude: float


class Camera(msgspec.Struct, frozen=True, omit_defaults=True):
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    taken_at: str | None = None  # ISO 8601, with the offset when the camera recorded one
    location: Location | None = None  # only when the spec's info asks for gps


class SourceDetails(msgspec.Struct, frozen=True, omit_defaults=True):
    format: str
    width: int  # as shown (after EXIF orientation when auto-orient is on)
    height: int
    orientation: int
    frames: int
    has_alpha: bool
    average_color: str
    dominant_color: str
    profile: str | None = None  # the embedded colour profile's name ("Display P3", ...)
    camera: Camera | None = None
    blurhash: str | None = None
    thumbhash: str | None = None
