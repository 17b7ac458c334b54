"""Pillow (or Pillow-SIMD, run by its own venv's python): draft() shrink-on-load once to the largest
output, then one LANCZOS resize and one encode per output.
Usage: python pillow_runner.py JOB.json -> prints {"seconds": [...], "peak_rss": bytes}"""

import io
import json
import sys
import time
from pathlib import Path

from PIL import Image, ImageSequence

try:  # HEIC sources (bench/peers/setup.sh installs it beside Pillow and Pillow-SIMD)
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:
    pass

job = json.loads(Path(sys.argv[1]).read_text())
data = Path(job["source"]).read_bytes()
largest = max(o["width"] for o in job["outputs"])
sw, sh = job["source_width"], job["source_height"]


def size(o: dict) -> tuple[int, int]:
    return o["width"], o.get("height") or max(1, int(sh * o["width"] / sw + 0.5))


def encode(im: Image.Image, o: dict) -> bytes:
    buf = io.BytesIO()
    if o["format"] == "webp":
        im.save(buf, "WEBP", quality=o["quality"], method=o.get("effort", 4))
    elif o["format"] == "jpeg":
        im.save(buf, "JPEG", quality=o["quality"], progressive=bool(o.get("progressive")), optimize=True)
    else:
        im.save(buf, "PNG", compress_level=o.get("effort", 6))
    return buf.getvalue()


def cover(im: Image.Image, w: int, h: int) -> Image.Image:
    scale = max(w / im.width, h / im.height)
    sw2, sh2 = max(w, round(im.width * scale)), max(h, round(im.height * scale))
    left, top = (sw2 - w) // 2, (sh2 - h) // 2
    return im.resize((w, h), Image.LANCZOS, box=(left / scale, top / scale, (left + w) / scale, (top + h) / scale))


def animated(o: dict) -> bytes:
    """Every frame resized, written as one animated WebP with the source's timing."""
    im = Image.open(io.BytesIO(data))
    w, h = size(o)
    frames = [f.convert("RGB").resize((w, h), Image.LANCZOS) for f in ImageSequence.Iterator(im)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=im.info.get("duration", 100),
                   loop=im.info.get("loop", 0), quality=o["quality"], method=o.get("effort", 4),
                   # libvips' (and sharp's) keyframe spacing: only where the encoder wants one. Pillow's
                   # default forces one every 3-5 frames, ~4x the bytes for the same quality
                   kmin=2**31 - 3, kmax=2**31 - 2)  # fmt: skip
    return buf.getvalue()


def once() -> list[bytes]:
    if job.get("animated"):
        return [animated(o) if o["format"] == "webp" else encode(Image.open(io.BytesIO(data)).convert("RGB").resize(
            size(o), Image.LANCZOS), o) for o in job["outputs"]]  # fmt: skip
    im = Image.open(io.BytesIO(data))
    if im.format == "JPEG":
        im.draft("RGB", (largest, round(sh * largest / sw)))
    im.load()
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    outs = []
    for o in job["outputs"]:
        w, h = size(o)
        resized = cover(im, w, h) if o.get("fit") == "cover" else im.resize((w, h), Image.LANCZOS)
        outs.append(encode(resized, o))
    return outs


seconds = []
outputs: list[bytes] = []
for _ in range(job["iterations"]):
    t = time.perf_counter()
    outputs = once()
    seconds.append(time.perf_counter() - t)
if job.get("out_dir"):
    for o, b in zip(job["outputs"], outputs, strict=True):
        Path(job["out_dir"], f"{o['id']}.{o['format']}").write_bytes(b)
# VmHWM: this process's own high-water mark (ru_maxrss would carry the parent's across exec)
status = Path("/proc/self/status").read_text().splitlines()
hwm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_rss": hwm}))
