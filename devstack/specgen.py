"""Random valid job specs, and small sources of every input format, for fuzzing the engine.

A spec is drawn from ``random.Random(f"{seed}:{index}")``, so any one of a run can be rebuilt
from its seed and index alone (``python -m bench.fuzz --seed S --only INDEX``). Candidates are
drawn loosely from every op, output format and option, and kept only when the DSL itself accepts
them (``decode_job_spec`` and ``spec_issues``): the generator stays valid as the DSL's rules
change, and never decides validity on its own. Sizes and efforts are kept small so a job takes
a fraction of a second: the fuzzer looks for crashes, not for slow encoders.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

import pyvips

from devstack.imagegen import encode, photo, with_orientation
from pipeline.compile import spec_issues
from pipeline.dsl import Limits, decode_job_spec
from pipeline.dsl.types import KeepTag, OutputFormat
from pipeline.errors import SpecError
from pipeline.formats import FORMATS, Format

__all__ = [
    "INPUT_CAUSED",
    "LIMITS",
    "OUTPUT_FORMATS",
    "STEP_MAKERS",
    "Case",
    "Source",
    "assets",
    "case_at",
    "sources",
]

# How a valid spec may still fail on a valid image, because of that image: what the spec asks
# is impossible or too much for its size or content (a crop box outside it, an output over the
# pixel limit, more work than the budget, a max_bytes no quality meets, an animation whose frames
# together are too many pixels). Any other failure of a valid spec on a valid image is a defect:
# corrupt_image or unsupported_format would blame a good image, asset_not_found a present asset,
# deadline_exceeded or out_of_memory a job sized to take well under a second, and
# engine_crashed or internal_error the engine itself.
INPUT_CAUSED = frozenset(
    {"over_budget", "image_too_large", "output_too_large", "invalid_operation", "cannot_meet_max_bytes"}
)
# Sources and sizes here are small; the budget is high so the planner refuses little and most
# specs run, but stays a cap (an enlargement to 16384 px is still refused).
LIMITS = Limits(max_job_cost=2_000_000)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
LOGO = "brand/logo.png"


@dataclass(frozen=True, slots=True)
class Source:
    name: str  # the input format and its peculiarity: "png-alpha", "gif-animated"
    data: bytes


@dataclass(frozen=True, slots=True)
class Case:
    seed: int
    index: int
    source: str  # a key of ``sources()``
    spec: dict[str, Any]  # JSON values, accepted by decode_job_spec and spec_issues under LIMITS
    tries: int  # candidates drawn until one was valid

    def describe(self) -> str:
        """Enough to rebuild and rerun this case by hand."""
        return f"seed={self.seed} index={self.index} source={self.source} spec={json.dumps(self.spec)}"


# --- sources ----------------------------------------------------------------------------------


def sources(seed: int = 1) -> dict[str, Source]:
    """One small image (64-400 px) per input format and peculiarity, made in code (and one
    pixel, the smallest image there is)."""
    rng = random.Random(seed)

    def size() -> tuple[int, int]:
        return rng.randint(64, 400), rng.randint(64, 400)

    def pic(alpha: bool = False) -> pyvips.Image:
        return photo(*size(), seed=rng.randint(1, 10_000), alpha=alpha)

    made: dict[str, bytes] = {
        "jpeg": encode(pic(), ".jpg", Q=85),
        "jpeg-exif-orientation-6": encode(with_orientation(pic(), 6), ".jpg", Q=85),
        "jpeg-grey": encode(pic().colourspace("b-w"), ".jpg", Q=85),
        "jpeg-icc": encode(pic().icc_export(output_profile="srgb"), ".jpg", Q=85),
        "png": encode(pic(), ".png"),
        "png-alpha": encode(pic(alpha=True), ".png"),
        "png-grey-alpha": encode(pic(alpha=True).colourspace("b-w"), ".png"),
        "png-one-pixel": encode(photo(1, 1, seed=rng.randint(1, 10_000)).colourspace("b-w"), ".png"),
        "png-16bit": encode((pic() * 257).cast("ushort").copy(interpretation="rgb16"), ".png"),
        "webp": encode(pic(), ".webp", Q=80),
        "webp-alpha": encode(pic(alpha=True), ".webp", lossless=True),
        "webp-animated": _animation(rng, ".webp"),
        "gif": encode(pic(), ".gif"),
        "gif-animated": _animation(rng, ".gif"),
        "gif-animated-transparent": _animation(rng, ".gif", transparent=True),
        "tiff": encode(pic(), ".tif"),
        "avif": encode(pic(), ".avif", Q=60, effort=0),
        "svg": _svg(rng),
        "heic": _heic(pic(alpha=rng.random() < 0.5)),
        "jxl": _jxl(pic()),
    }
    return {name: Source(name, data) for name, data in made.items()}


def _animation(rng: random.Random, suffix: str, *, transparent: bool = False) -> bytes:
    width, height, frames = rng.randint(48, 200), rng.randint(48, 200), rng.randint(2, 6)
    made = [photo(width, height, seed=rng.randint(1, 10_000), alpha=transparent) for _ in range(frames)]
    strip = pyvips.Image.arrayjoin(made, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [rng.choice([20, 50, 100]) for _ in range(frames)])
    strip.set_type(pyvips.GValue.gint_type, "loop", rng.randint(0, 3))
    return strip.write_to_buffer(suffix, **({"lossless": True} if suffix == ".webp" else {}))


def _svg(rng: random.Random) -> bytes:
    w, h = rng.randint(64, 400), rng.randint(64, 400)
    shapes = "".join(
        f'<circle cx="{rng.randint(0, w)}" cy="{rng.randint(0, h)}" r="{rng.randint(4, 60)}" '
        f'fill="#{rng.randint(0, 0xFFFFFF):06x}" fill-opacity="0.8"/>'
        for _ in range(8)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">'
        f'<rect width="{w}" height="{h}" fill="#336699"/>{shapes}'
        f'<text x="8" y="{h // 2}" font-size="20" fill="white">PixelFlow</text></svg>'
    ).encode()


def _heic(image: pyvips.Image) -> bytes:
    import pillow_heif  # a test dependency (its x265 encoder is GPL): never imported by the service
    from PIL import Image

    mode = {3: "RGB", 4: "RGBA"}[image.bands]
    pil = Image.frombytes(mode, (image.width, image.height), image.write_to_memory())
    out = io.BytesIO()
    pillow_heif.from_pillow(pil).save(out, quality=80)
    return out.getvalue()


def _jxl(image: pyvips.Image) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(image.numpy(), level=85, effort=3))


def assets(seed: int = 1) -> dict[str, bytes]:
    """The asset store an image watermark reads from."""
    return {LOGO: encode(photo(120, 48, seed=seed, alpha=True), ".png")}


# --- specs ------------------------------------------------------------------------------------

_COMPASS = ("centre", "north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
_PLACEMENTS = (*_COMPASS, "attention", "entropy")
_FITS = ("cover", "contain", "fill", "inside", "outside")
_KEEPS: tuple[str, ...] = get_args(KeepTag)
# low efforts keep jobs fast (AVIF effort 9 costs seconds per megapixel): up to each format's
# default, AVIF's up to 3
_EFFORTS = {
    name: (f.effort.lo, max(f.effort.default, 3 if name == "avif" else 0))
    for name, f in FORMATS.items()
    if f.effort is not None
} | {"auto": (0, 3)}


def _length(rng: random.Random) -> int:
    return rng.choice((rng.randint(1, 64), rng.randint(16, 400), rng.randint(200, 1200)))


def _colour(rng: random.Random) -> str:
    return f"#{rng.randint(0, 0xFFFFFF):06x}" + (f"{rng.randint(0, 255):02x}" if rng.random() < 0.3 else "")


def _placement(rng: random.Random) -> object:
    if rng.random() < 0.2:
        return {"x": round(rng.random(), 3), "y": round(rng.random(), 3)}
    return rng.choice(_PLACEMENTS)


def _maybe(rng: random.Random, step: dict[str, Any], p: float, key: str, value: Callable[[], object]) -> None:
    if rng.random() < p:
        step[key] = value()


def _resize(rng: random.Random) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "resize", "fit": rng.choice(_FITS)}
    which = rng.choice(("width", "height", "both", "both"))
    if which in ("width", "both"):
        step["width"] = _length(rng)
    if which in ("height", "both"):
        step["height"] = _length(rng)
    if step["fit"] == "cover" and which == "both":
        _maybe(rng, step, 0.6, "gravity", lambda: _placement(rng))
    if step["fit"] == "contain":
        _maybe(rng, step, 0.5, "background", lambda: _colour(rng))
    _maybe(rng, step, 0.3, "without_enlargement", lambda: True)
    return step


def _crop(rng: random.Random) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "crop"}
    kind = rng.random()
    if kind < 0.4:
        step["aspect_ratio"] = f"{rng.randint(1, 21)}:{rng.randint(1, 21)}"
        _maybe(rng, step, 0.7, "gravity", lambda: _placement(rng))
    else:
        step["width"], step["height"] = _length(rng) // 2 + 1, _length(rng) // 2 + 1
        if kind < 0.7:
            step["left"], step["top"] = rng.randint(0, 100), rng.randint(0, 100)  # may fall outside
        else:
            _maybe(rng, step, 0.7, "gravity", lambda: _placement(rng))
    return step


def _rotate(rng: random.Random) -> dict[str, Any]:
    angle = rng.choice((90, 180, 270, -90, 360, round(rng.uniform(-360, 360), 1)))
    step: dict[str, Any] = {"op": "rotate", "angle": angle}
    _maybe(rng, step, 0.4, "background", lambda: _colour(rng))
    return step


def _blur(rng: random.Random) -> dict[str, Any]:
    return {"op": "blur", "sigma": round(rng.uniform(0.1, 8), 2)}


def _sharpen(rng: random.Random) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "sharpen"}
    _maybe(rng, step, 0.5, "sigma", lambda: round(rng.uniform(0.3, 3), 2))
    _maybe(rng, step, 0.3, "flat", lambda: round(rng.uniform(0, 5), 2))
    _maybe(rng, step, 0.3, "jagged", lambda: round(rng.uniform(0, 5), 2))
    return step


def _modulate(rng: random.Random) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "modulate"}
    _maybe(rng, step, 0.6, "brightness", lambda: round(rng.uniform(0, 3), 2))
    _maybe(rng, step, 0.6, "saturation", lambda: round(rng.uniform(0, 3), 2))
    _maybe(rng, step, 0.6, "hue", lambda: round(rng.uniform(-360, 360), 1))
    return step


def _pad(rng: random.Random) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "pad"}
    for side in ("top", "right", "bottom", "left"):
        _maybe(rng, step, 0.5, side, lambda: rng.randint(0, 64))
    _maybe(rng, step, 0.5, "background", lambda: _colour(rng))
    return step


def _watermark(rng: random.Random) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "watermark"}
    if rng.random() < 0.6:
        step["text"] = rng.choice(("PixelFlow", "© 2026 Ünïcødé ✓", "x", "a much longer caption " * 3, "日本語"))
        _maybe(rng, step, 0.5, "font", lambda: rng.choice(("sans", "serif", "monospace")))
        _maybe(rng, step, 0.5, "font_size", lambda: rng.randint(4, 96))
        _maybe(rng, step, 0.5, "color", lambda: _colour(rng))
    else:
        step["image"] = LOGO
        _maybe(rng, step, 0.5, "width", lambda: rng.randint(1, 300))
    _maybe(rng, step, 0.5, "opacity", lambda: round(rng.random(), 2))
    _maybe(rng, step, 0.5, "gravity", lambda: rng.choice(_COMPASS))
    _maybe(rng, step, 0.5, "margin", lambda: rng.randint(0, 100))
    return step


def _no_fields(op: str) -> Callable[[random.Random], dict[str, Any]]:
    return lambda rng: {"op": op}


# One maker per op of the DSL; tests/engine/test_spec_fuzz.py holds this to STEP_TYPES and the ops'
# registry, so a new op is fuzzed from day one.
STEP_MAKERS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "resize": _resize,
    "crop": _crop,
    "rotate": _rotate,
    "flip": _no_fields("flip"),
    "flop": _no_fields("flop"),
    "blur": _blur,
    "sharpen": _sharpen,
    "grayscale": _no_fields("grayscale"),
    "modulate": _modulate,
    "pad": _pad,
    "watermark": _watermark,
}


def _steps(rng: random.Random) -> list[dict[str, Any]]:
    count = rng.choice((0, 1, 1, 2, 2, 3, 4))
    ops = list(STEP_MAKERS)
    made = [STEP_MAKERS[rng.choice(ops)](rng) for _ in range(count)]
    if rng.random() < 0.5 and not any(s["op"] == "resize" for s in made):
        made.insert(0, _resize(rng))  # most real variants start with a resize
    return made


def _output(rng: random.Random, variant: dict[str, Any]) -> None:
    """Format and encoder options, drawn per format where each applies (the DSL has the last word)."""
    fmt = rng.choice(OUTPUT_FORMATS)
    variant["format"] = fmt
    if _offers(fmt, lambda f: f.lossless) and rng.random() < 0.2:
        variant["lossless"] = True
    elif _offers(fmt, lambda f: f.quality is not None) and rng.random() < 0.4:
        variant["quality"] = rng.randint(1, 100)
    if fmt in _EFFORTS and rng.random() < 0.5:
        variant["effort"] = rng.randint(*_EFFORTS[fmt])
    if _offers(fmt, lambda f: f.progressive) and rng.random() < 0.3:
        variant["progressive"] = True
    if _offers(fmt, lambda f: f.lossy) and not variant.get("lossless") and rng.random() < 0.15:
        variant["max_bytes"] = 100 if rng.random() < 0.1 else rng.randint(2000, 200_000)
    meta = rng.random()
    if meta < 0.2:
        variant["keep"] = rng.sample(_KEEPS, rng.randint(1, 3))
        if "gps" in variant["keep"] and "exif" not in variant["keep"]:
            variant["keep"].append("exif")
    elif meta < 0.3:
        variant["strip"] = False
    if rng.random() < 0.15:
        variant["animated"] = False


def _offers(fmt: str, option: Callable[[Format], bool]) -> bool:
    """Whether an option applies to ``fmt`` (pipeline/formats.py); any may to `auto`."""
    return fmt == "auto" or option(FORMATS[fmt])


def _candidate(rng: random.Random) -> dict[str, Any]:
    variants: list[dict[str, Any]] = []
    for i in range(rng.randint(1, 12)):
        variant: dict[str, Any] = {"id": f"v{i}"}
        shape = rng.random()
        if variants and shape < 0.2:  # an identical branch: another's parent and steps, its own encoder
            twin = rng.choice(variants)
            if "from" in twin:
                variant["from"] = twin["from"]
            variant["steps"] = [dict(s) for s in twin.get("steps", [])]
        else:
            if variants and shape < 0.5:  # a `from` chain
                variant["from"] = rng.choice(variants)["id"]
            variant["steps"] = _steps(rng)
        _output(rng, variant)
        variants.append(variant)
    spec: dict[str, Any] = {"version": 1, "pipeline": variants}
    if rng.random() < 0.2:
        spec["auto_orient"] = False
    if rng.random() < 0.15:
        spec["info"] = {"placeholders": rng.sample(["blurhash", "thumbhash"], rng.randint(0, 2))}
    return spec


def _accepted(spec: dict[str, Any]) -> bool:
    try:
        decoded = decode_job_spec(spec, LIMITS)
    except SpecError:
        return False
    return not spec_issues(decoded, LIMITS)


def case_at(seed: int, index: int, source_names: list[str] | tuple[str, ...]) -> Case:
    """The ``index``-th case of run ``seed``: a valid spec over one of ``source_names``."""
    rng = random.Random(f"{seed}:{index}")
    source = rng.choice(sorted(source_names))
    for tries in range(1, 1001):
        spec = _candidate(rng)
        if _accepted(spec):
            return Case(seed, index, source, spec, tries)
    raise RuntimeError(f"no valid spec in 1000 candidates (seed {seed}, index {index}): the generator drifted")
