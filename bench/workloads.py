"""The three engine workloads, each written four ways with identical outputs: PixelFlow's engine,
hand-written pyvips (naive: one thumbnail per variant; careful: one shrink-on-load decode shared by
all variants), and Pillow with draft(). Sizes, formats, qualities and effort match across all four."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

Output = list[bytes]

# (id, from, steps, format, quality, progressive) in PixelFlow's DSL; the other implementations mirror it.
W_ONE = {"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": 500, "height": 500, "format": "webp"}]}
W_THREE = {
    "version": 1,
    "pipeline": [
        {"id": "xl", "steps": [{"op": "resize", "width": 2048, "fit": "inside"}], "format": "webp", "quality": 80},
        {
            "id": "m",
            "steps": [{"op": "resize", "width": 800, "fit": "inside"}],
            "format": "jpeg",
            "quality": 75,
            "progressive": True,
        },
        {"id": "sq", "steps": [{"op": "resize", "width": 200, "height": 200}], "format": "webp", "quality": 70},
    ],
}
MARK = {"op": "watermark", "text": "PixelFlow", "font_size": 24, "opacity": 0.6, "gravity": "southeast", "margin": 12}
W_EIGHT = {
    "version": 1,
    "pipeline": [
        {"id": "xl", "steps": [{"op": "resize", "width": 2048, "fit": "inside"}], "format": "webp", "quality": 80},
        {"id": "l", "from": "xl", "steps": [{"op": "resize", "width": 1200, "fit": "inside"}], "format": "jpeg", "quality": 80},
        {"id": "m", "from": "l", "steps": [{"op": "resize", "width": 800, "fit": "inside"}, MARK], "format": "jpeg", "quality": 75, "progressive": True},
        {"id": "s", "from": "l", "steps": [{"op": "resize", "width": 400, "fit": "inside"}], "format": "webp", "quality": 75},
        {"id": "xs", "from": "s", "steps": [{"op": "resize", "width": 200, "height": 200}], "format": "webp", "quality": 70},
        {"id": "sq", "steps": [{"op": "resize", "width": 600, "height": 600}], "format": "jpeg", "quality": 80},
        {"id": "gray", "from": "m", "steps": [{"op": "grayscale"}], "format": "jpeg", "quality": 75},
        {"id": "lqip", "from": "xs", "steps": [{"op": "blur", "sigma": 4}], "format": "webp", "quality": 50},
    ],
}  # fmt: skip
WORKLOADS = {"one": W_ONE, "three": W_THREE, "eight": W_EIGHT}


@dataclass(frozen=True)
class Impl:
    name: str
    run: Callable[[bytes, dict], Output]


# -- PixelFlow ---------------------------------------------------------------------------------


def pixelflow(data: bytes, spec: dict) -> Output:
    from pipeline.dsl import decode_job_spec
    from pipeline.engine import process

    return [v.data for v in process(data, decode_job_spec(spec)).variants]


# -- hand-written pyvips -----------------------------------------------------------------------


def _vips_encode(img, v: dict) -> bytes:
    fmt, q = v["format"], v.get("quality")
    if fmt == "webp":
        return img.write_to_buffer(".webp", Q=q or 80, effort=4, keep="none")
    return img.write_to_buffer(
        ".jpg", Q=q or 80, interlace=v.get("progressive", False), optimize_coding=True, keep="none"
    )


def _vips_steps(img, steps: list[dict]):
    import html

    import pyvips

    for s in steps:
        op = s["op"]
        if op == "resize":
            w, h = s["width"], s.get("height")
            if h is None:
                img = img.resize(w / img.width)
            else:
                scale = max(w / img.width, h / img.height)
                img = img.resize(scale)
                img = img.crop((img.width - w) // 2, (img.height - h) // 2, w, h)
        elif op == "grayscale":
            img = img.colourspace("b-w")
        elif op == "blur":
            img = img.gaussblur(s["sigma"]).cast("uchar")
        elif op == "watermark":
            mask = pyvips.Image.text(html.escape(s["text"]), font=f"sans {s['font_size']}", dpi=72)
            overlay = (
                mask.new_from_image([255, 255, 255])
                .copy(interpretation="srgb")
                .bandjoin((mask * s["opacity"]).cast("uchar"))
            )
            x, y = img.width - overlay.width - s["margin"], img.height - overlay.height - s["margin"]
            img = img.composite2(overlay, "over", x=x, y=y).cast("uchar").extract_band(0, n=img.bands)
    return img


def _norm(spec: dict) -> list[dict]:
    out = []
    for v in spec["pipeline"]:
        if "action" in v:
            step = {k: v[k] for k in ("width", "height") if k in v} | {"op": v["action"]}
            v = {"id": v["id"], "steps": [step], "format": v["format"], "quality": v.get("quality")}  # noqa: PLW2901
        out.append(v)
    return out


def vips_naive(data: bytes, spec: dict) -> Output:
    """What most code does: one thumbnail call per variant, so the source is decoded every time.
    Chained (`from`) variants redo their parent's chain from the source."""
    import pyvips

    variants = {v["id"]: v for v in _norm(spec)}

    def chain(v: dict) -> list[dict]:
        return ([*chain(variants[v["from"]]), *v["steps"]]) if "from" in v else list(v["steps"])

    out = []
    for v in variants.values():
        steps = chain(v)
        first, rest = steps[0], steps[1:]
        if first.get("height"):
            img = pyvips.Image.thumbnail_buffer(data, first["width"], height=first["height"], crop="centre")
        else:
            img = pyvips.Image.thumbnail_buffer(data, first["width"], height=10_000_000)
        out.append(_vips_encode(_vips_steps(img, rest), v))
    return out


def vips_careful(data: bytes, spec: dict) -> Output:
    """The best a careful engineer writes by hand: shrink-on-load once to the largest size needed,
    keep it in memory, derive every variant (and chains) from decoded pixels."""
    import pyvips

    variants = _norm(spec)
    roots = [v for v in variants if "from" not in v]
    header = pyvips.Image.new_from_buffer(data, "")
    need = max(
        max(s["width"] / header.width, (s.get("height") or 0) / header.height) for s in (v["steps"][0] for v in roots)
    )
    width = header.width if need >= 1 else max(1, math.ceil(header.width * need))
    base = pyvips.Image.thumbnail_buffer(data, width, height=10_000_000)
    if len(roots) > 1:
        base = base.copy_memory()
    done: dict[str, object] = {}
    children = {v.get("from") for v in variants}
    out = []
    for v in variants:
        src = done[v["from"]] if "from" in v else base
        img = _vips_steps(src, v["steps"])
        if v["id"] in children:
            img = img.copy_memory()
        done[v["id"]] = img
        out.append(_vips_encode(img, v))
    return out


# -- Pillow ------------------------------------------------------------------------------------


def _pil_steps(img, steps: list[dict]):
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    for s in steps:
        op = s["op"]
        if op == "resize":
            w, h = s["width"], s.get("height")
            if h is None:
                img = img.resize(
                    (w, max(1, round(img.height * w / img.width))), Image.Resampling.LANCZOS, reducing_gap=3.0
                )
            else:
                scale = max(w / img.width, h / img.height)
                sw, sh = max(w, round(img.width * scale)), max(h, round(img.height * scale))
                img = img.resize((sw, sh), Image.Resampling.LANCZOS, reducing_gap=3.0)
                img = img.crop(((sw - w) // 2, (sh - h) // 2, (sw - w) // 2 + w, (sh - h) // 2 + h))
        elif op == "grayscale":
            img = img.convert("L")
        elif op == "blur":
            img = img.filter(ImageFilter.GaussianBlur(s["sigma"]))
        elif op == "watermark":
            font = ImageFont.load_default(size=s["font_size"])
            layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
            draw = ImageDraw.Draw(layer)
            box = draw.textbbox((0, 0), s["text"], font=font)
            x = img.width - (box[2] - box[0]) - s["margin"]
            y = img.height - (box[3] - box[1]) - s["margin"]
            draw.text((x, y), s["text"], font=font, fill=(255, 255, 255, round(255 * s["opacity"])))
            img = Image.alpha_composite(img.convert("RGBA"), layer).convert(img.mode)
    return img


def _pil_encode(img, v: dict) -> bytes:
    buf = io.BytesIO()
    q = v.get("quality") or 80
    if v["format"] == "webp":
        img.save(buf, "WEBP", quality=q, method=4)
    else:
        img.save(buf, "JPEG", quality=q, progressive=v.get("progressive", False), optimize=True)
    return buf.getvalue()


def pillow(data: bytes, spec: dict) -> Output:
    """Pillow as a careful engineer uses it: draft() for JPEG DCT scaling to the largest size
    needed, decode once, derive every variant from the decoded image."""
    from PIL import Image

    variants = _norm(spec)
    img = Image.open(io.BytesIO(data))
    need = max(
        max(s["width"] / img.width, (s.get("height") or 0) / img.height)
        for s in (v["steps"][0] for v in variants if "from" not in v)
    )
    if img.format == "JPEG":
        img.draft("RGB", (int(img.width * need) + 1, int(img.height * need) + 1))
    img = img.convert("RGB")
    done: dict[str, object] = {}
    out = []
    for v in variants:
        src = done[v["from"]] if "from" in v else img
        res = _pil_steps(src, v["steps"])
        done[v["id"]] = res
        out.append(_pil_encode(res, v))
    return out


IMPLS = {
    "pixelflow": Impl("pixelflow", pixelflow),
    "vips_careful": Impl("vips_careful", vips_careful),
    "vips_naive": Impl("vips_naive", vips_naive),
    "pillow": Impl("pillow", pillow),
}
