"""The single measurements behind #12's engine choices (docs/BENCHMARKS.md), one thread:

    VIPS_CONCURRENCY=1 .venv/bin/python -m bench.probes     # about a minute; needs scikit-image

1. JPEG decode at 1/8 and 1/2 DCT scale of a 24 MP photo: pyvips-binary (mozjpeg) vs Pillow
   (libjpeg-turbo), and Pillow's with its pixels then handed to libvips (what the engine would pay).
2. Resizing a 12 MP gradient-alpha image premultiplied in float vs in 8 bits: time per resize,
   and how far the 8-bit result is from the float one once composited on black and on white.
3. What the DCT-scaled decode costs in resampling: SSIM of 24 MP JPEG -> width through
   libvips' thumbnail (which keeps 2x for its own resize) and through the deepest DCT scale that
   covers the width (what PixelFlow now decodes at), both against Pillow's LANCZOS of the full
   decode (a reference neither path made).
4. Encoding the same pixels (the photo resized to 2560 and 1280 px) as WebP q80 effort 4 and as JPEG
   q80 with optimised Huffman tables: pyvips-binary's libwebp/mozjpeg vs Pillow's bundled
   libwebp/libjpeg-turbo, and whether they write the same bytes.
5. Cascaded resizing: each width of a responsive set (1920 ... 320 px) resized from the next larger
   one instead of from the 2560 px decode: time for all five, and SSIM of both against Pillow's
   LANCZOS of the full decode.
6. JPEG decode at 1/8 and 1/2 as the engine now does it (libjpeg-turbo through simplejpeg,
   pipeline/jpeg.py, metadata included) vs pyvips-binary's own, both into memory.
7. The six resizes of the responsive set from the 3000 px decode: libvips vs Pillow's LANCZOS.
8. The `animated` workload's parts (bench.versus' 24-frame 480x270 GIF): decoding every frame,
   libvips vs Pillow; writing the 240 px frames as animated WebP q80 effort 4, libvips vs
   Pillow's writer with the same keyframe spacing, and the bytes each writes.
9. The `animated` workload as the engine now runs it: the GIF's frames decoded and resized by
   thumbnail (RGBA, premultiplied in float) vs the engine's path for a GIF its blocks prove
   opaque (pipeline/gif.py, pipeline/load.py: resized as RGBA in 8 bits, the resized alpha
   checked, then dropped); and the animated WebP as libvips writes it vs the
   engine's writer (pipeline/pillow_encode.py): time, bytes and SSIMULACRA2 over every frame
   against the pixels before encoding, at quality 80 and at the highest quality whose file is no
   larger than libvips' at 80 (needs ssimulacra2).
10. Memory, each in a fresh process (peak RSS growth, VmHWM): probing and decoding a 12 MP
   gradient-alpha PNG (26 MB) to 2048 px through pyvips' buffer calls (which copy the file into a
   blob) vs a memory source (pipeline/vips.py, the bytes read in place); and encoding that 2048 px
   decode as WebP q80 when the encoder copies its pixels out of libvips vs takes the bytes the
   engine holds them in (``in_memory``).
Medians of 5 runs, the two sides of each comparison interleaved.
"""

from __future__ import annotations

import io
import statistics
import time

_HUGE = 10_000_000


def _interleaved(**runs):
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(5):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) * 1000 for name, ts in times.items()}


def main() -> None:
    import numpy as np
    import pyvips
    from PIL import Image
    from skimage.metrics import structural_similarity

    from devstack.imagegen import encode, photo
    from pipeline.compile import jpeg_shrink
    from pipeline.ops.resize import scale
    from pipeline.pillow_encode import write_jpeg, write_webp

    pyvips.cache_set_max(0)
    jpeg = encode(photo(6000, 4000, seed=5), ".jpg", Q=90)

    def pillow_draft(shrink: int, handed_over: bool) -> None:
        im = Image.open(io.BytesIO(jpeg))
        im.draft("RGB", (6000 // shrink, 4000 // shrink))
        im.load()
        if handed_over:  # what using Pillow's decoder in the engine would cost: its pixels in libvips
            pyvips.Image.new_from_memory(im.tobytes(), im.width, im.height, 3, "uchar")

    for shrink in (8, 2):
        ms = _interleaved(
            pyvips=lambda f=shrink: pyvips.Image.new_from_buffer(jpeg, "", shrink=f, access="sequential").copy_memory(),
            pillow=lambda f=shrink: pillow_draft(f, False),
            pillow_to_vips=lambda f=shrink: pillow_draft(f, True),
        )
        print(f"1. 24 MP JPEG at 1/{shrink}: pyvips-binary {ms['pyvips']:.0f} ms, Pillow {ms['pillow']:.0f} ms, "
              f"Pillow then handed to libvips {ms['pillow_to_vips']:.0f} ms")  # fmt: skip

    rgba = pyvips.Image.thumbnail_buffer(encode(photo(4000, 3000, seed=5, alpha=True), ".png"), 2048, height=_HUGE)
    rgba = rgba.copy_memory()
    for width in (1024, 400):
        h = round(rgba.height * width / rgba.width)
        ms = _interleaved(
            float=lambda w=width: rgba.premultiply().resize(w / rgba.width).unpremultiply().cast("uchar").copy_memory(),
            eight_bit=lambda w=width, h=h: scale(rgba, w, h).copy_memory(),
        )
        a = rgba.premultiply().resize(width / rgba.width, vscale=h / rgba.height).unpremultiply()
        a = (a + 0.5).cast("uchar").numpy().astype(float)
        b = scale(rgba, width, h).numpy().astype(float)
        diffs = []
        for bg in (0, 255):
            composite = [x[..., :3] * x[..., 3:] / 255 + bg * (1 - x[..., 3:] / 255) for x in (a, b)]
            diffs.append(np.abs(composite[0] - composite[1]))
        worst, mean = max(d.max() for d in diffs), max(d.mean() for d in diffs)
        print(f"2. alpha resize 2048 -> {width}: float {ms['float']:.0f} ms, 8-bit {ms['eight_bit']:.0f} ms; "
              f"composited difference max {worst:.1f}, mean {mean:.2f} levels")  # fmt: skip

    full = Image.open(io.BytesIO(jpeg))
    full.load()
    for width in (400, 640, 1080, 1600):
        h = int(4000 * width / 6000 + 0.5)
        ref = np.asarray(full.resize((width, h), Image.LANCZOS).convert("L")).astype(float)

        def grey(image: pyvips.Image) -> np.ndarray:
            return image.colourspace("b-w")[0].numpy().astype(float)

        thumb = pyvips.Image.thumbnail_buffer(jpeg, width, height=_HUGE)
        f = jpeg_shrink((6000, 4000), (width, h))
        dct = pyvips.Image.new_from_buffer(jpeg, "", shrink=f)
        dct = dct.resize(width / dct.width, vscale=h / dct.height)
        s_thumb = structural_similarity(ref, grey(thumb), data_range=255)
        s_dct = structural_similarity(ref, grey(dct), data_range=255)
        print(f"3. 6000 -> {width} px: thumbnail SSIM {s_thumb:.4f}, DCT 1/{f} {s_dct:.4f} ({s_dct - s_thumb:+.4f})")

    for width in (2560, 1280):
        pixels = full.resize((width, int(4000 * width / 6000 + 0.5)), Image.LANCZOS)
        image = pyvips.Image.new_from_array(np.asarray(pixels)).copy(interpretation="srgb").copy_memory()
        ms = _interleaved(
            vips_webp=lambda im=image: im.webpsave_buffer(Q=80, effort=4, keep="none"),
            pillow_webp=lambda im=image: write_webp(im, quality=80, effort=4),
            vips_jpeg=lambda im=image: im.jpegsave_buffer(Q=80, optimize_coding=True, keep="none"),
            pillow_jpeg=lambda im=image: write_jpeg(im, quality=80, progressive=False),
        )
        same_webp = image.webpsave_buffer(Q=80, effort=4, keep="none") == write_webp(image, quality=80, effort=4)
        same_jpeg = image.jpegsave_buffer(Q=80, optimize_coding=True, keep="none") == write_jpeg(
            image, quality=80, progressive=False
        )
        print(f"4. encode {width} px: WebP pyvips {ms['vips_webp']:.0f} ms, Pillow {ms['pillow_webp']:.0f} ms; "
              f"JPEG pyvips {ms['vips_jpeg']:.1f} ms, Pillow {ms['pillow_jpeg']:.1f} ms; "
              f"identical bytes: WebP {same_webp}, JPEG {same_jpeg}")  # fmt: skip

    held = scale(pyvips.Image.new_from_buffer(jpeg, "", shrink=2, access="sequential"), 2560, 1707).copy_memory()
    widths = [(w, int(4000 * w / 6000 + 0.5)) for w in (1920, 1280, 960, 640, 320)]

    def cascade(direct: bool) -> list[pyvips.Image]:
        made, previous = [], held
        for w, h in widths:
            made.append(scale(held if direct else previous, w, h).copy_memory())
            previous = made[-1]
        return made

    ms = _interleaved(direct=lambda: cascade(True), cascaded=lambda: cascade(False))
    losses = []
    for (w, h), d, c in zip(widths, cascade(True), cascade(False), strict=True):
        ref = np.asarray(full.resize((w, h), Image.LANCZOS).convert("L")).astype(float)
        d_ssim = structural_similarity(ref, d.colourspace("b-w")[0].numpy().astype(float), data_range=255)
        c_ssim = structural_similarity(ref, c.colourspace("b-w")[0].numpy().astype(float), data_range=255)
        losses.append(f"{w}: {c_ssim - d_ssim:+.4f}")
    print(f"5. five widths from 2560 px: direct {ms['direct']:.0f} ms, cascaded {ms['cascaded']:.0f} ms; "
          f"SSIM change cascaded vs direct {', '.join(losses)}")  # fmt: skip

    from pipeline.jpeg import decode_jpeg_scaled

    for shrink in (8, 2):
        ms = _interleaved(
            pyvips=lambda f=shrink: pyvips.Image.new_from_buffer(jpeg, "", shrink=f, fail_on="warning").copy_memory(),
            streamed=lambda f=shrink: pyvips.Image.new_from_buffer(
                jpeg, "", shrink=f, fail_on="warning", access="sequential"
            ).copy_memory(),
            engine=lambda f=shrink: decode_jpeg_scaled(jpeg, f, fail_on="warning").copy_memory(),  # type: ignore[union-attr]
        )
        print(f"6. 24 MP JPEG at 1/{shrink}, into memory: pyvips-binary {ms['pyvips']:.0f} ms "
              f"(streamed, the engine's way before: {ms['streamed']:.0f} ms), the engine's decoder {ms['engine']:.0f} ms")  # fmt: skip

    decoded = pyvips.Image.new_from_buffer(jpeg, "", shrink=2).copy_memory()
    as_pillow = Image.frombuffer("RGB", (decoded.width, decoded.height), decoded.write_to_memory(), "raw", "RGB", 0, 1)
    sizes = [(w, round(decoded.height * w / decoded.width)) for w in (2560, 1920, 1280, 960, 640, 320)]
    ms = _interleaved(
        libvips=lambda: [scale(decoded, w, h).copy_memory() for w, h in sizes],
        pillow=lambda: [as_pillow.resize((w, h), Image.LANCZOS) for w, h in sizes],
    )
    print(
        f"7. six responsive resizes from {decoded.width} px: libvips {ms['libvips']:.0f} ms, Pillow {ms['pillow']:.0f} ms"
    )

    import tempfile
    from pathlib import Path

    from PIL import ImageSequence

    from bench.versus import _animation

    with tempfile.TemporaryDirectory() as tmp:
        gif = _animation(Path(tmp) / "anim.gif", 480, 270, frames=24)[0].read_bytes()
    small = pyvips.Image.thumbnail_buffer(gif, 240, option_string="n=-1").copy_memory()
    page = small.get("page-height")
    frames = [
        Image.frombuffer("RGBA", (small.width, page), small.crop(0, i * page, small.width, page).write_to_memory())
        for i in range(small.height // page)
    ]

    def pillow_webp() -> bytes:
        out = io.BytesIO()
        frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0, quality=80,
                       method=4, kmin=2**31 - 3, kmax=2**31 - 2)  # fmt: skip
        return out.getvalue()

    ms = _interleaved(
        vips_decode=lambda: pyvips.Image.new_from_buffer(gif, "", n=-1).copy_memory(),
        pillow_decode=lambda: [f.convert("RGB") for f in ImageSequence.Iterator(Image.open(io.BytesIO(gif)))],
        vips_webp=lambda: small.webpsave_buffer(Q=80, effort=4, keep="none"),
        pillow_webp=pillow_webp,
    )
    vips_bytes, pillow_bytes = len(small.webpsave_buffer(Q=80, effort=4, keep="none")), len(pillow_webp())
    print(f"8. animated GIF, 24 frames: decode libvips {ms['vips_decode']:.0f} ms, Pillow {ms['pillow_decode']:.0f} ms; "
          f"animated WebP libvips {ms['vips_webp']:.0f} ms ({vips_bytes:,} bytes), "
          f"Pillow {ms['pillow_webp']:.0f} ms ({pillow_bytes:,} bytes)")  # fmt: skip
    _animated_now(gif)


def _animated_now(gif: bytes) -> None:
    import tempfile

    import pyvips
    from ssimulacra2 import compute_ssimulacra2

    from pipeline.load import _opaque_gif_frames
    from pipeline.pillow_encode import write_webp

    ms = _interleaved(
        thumbnail=lambda: pyvips.Image.thumbnail_buffer(gif, 240, option_string="n=-1").copy_memory(),
        engine=lambda: _opaque_gif_frames(gif, (240, 135), fail_on="error").copy_memory(),
    )
    print(f"9. animated GIF, 24 frames -> 240 px: decode and resize by thumbnail {ms['thumbnail']:.0f} ms, "
          f"its blocks proving it opaque, RGBA resized in 8 bits {ms['engine']:.0f} ms")  # fmt: skip
    stack = _opaque_gif_frames(gif, (240, 135), fail_on="error").copy_memory()
    page = stack.get("page-height")

    def engine(q: int) -> bytes:
        return write_webp(stack, quality=q, effort=4)

    def libvips(q: int) -> bytes:
        return stack.webpsave_buffer(Q=q, effort=4, keep="none")

    ms = _interleaved(libvips=lambda: libvips(80), engine=lambda: engine(80))
    budget = len(libvips(80))
    equal_size = max(q for q in range(60, 81) if len(engine(q)) <= budget)
    with tempfile.TemporaryDirectory() as tmp:
        frames = range(stack.height // page)
        for i in frames:
            stack.crop(0, i * page, stack.width, page).pngsave(f"{tmp}/ref{i}.png")

        def score(webp: bytes) -> float:
            decoded = pyvips.Image.new_from_buffer(webp, "", n=-1)[0:3]
            for i in frames:
                decoded.crop(0, i * page, stack.width, page).pngsave(f"{tmp}/out{i}.png")
            return statistics.mean(compute_ssimulacra2(f"{tmp}/ref{i}.png", f"{tmp}/out{i}.png") for i in frames)

        rows = [("libvips q80", libvips(80)), ("engine q80", engine(80)), (f"engine q{equal_size}", engine(equal_size))]
        scores = ", ".join(f"{name} {len(b):,} bytes SSIMULACRA2 {score(b):.1f}" for name, b in rows)
    print(f"   animated WebP q80 effort 4: libvips {ms['libvips']:.0f} ms, engine {ms['engine']:.0f} ms; {scores}")
    _memory()


_MEMORY_SETUP = """
import sys, pyvips
from pipeline.vips import configure_vips, in_memory, load_bytes, thumbnail_bytes
from pipeline.pillow_encode import write_webp
configure_vips()
data = open(sys.argv[1], "rb").read()
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024
"""
_MEMORY_RUNS = {
    "decode, buffer": "pyvips.Image.new_from_buffer(data, '', access='sequential').width; "
    "image = pyvips.Image.thumbnail_buffer(data, 2048).copy_memory()",
    "decode, in place": "load_bytes(data, access='sequential').width; image = thumbnail_bytes(data, 2048).copy_memory()",
    "encode, copied out": "held, pixels = in_memory(thumbnail_bytes(data, 2048)); before = hwm(); "
    "write_webp(held, quality=80, effort=4)",
    "encode, held bytes": "held, pixels = in_memory(thumbnail_bytes(data, 2048)); before = hwm(); "
    "write_webp(held, quality=80, effort=4, pixels=pixels)",
}


def _memory() -> None:
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from devstack.imagegen import encode, photo

    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "alpha.png"
        png.write_bytes(encode(photo(4000, 3000, seed=5, alpha=True), ".png", compression=6))
        grown = {}
        for name, code in _MEMORY_RUNS.items():
            script = _MEMORY_SETUP + "before = hwm()\n" + code + "\nprint(hwm() - before)"
            runs = [subprocess.run([sys.executable, "-c", script, str(png)], capture_output=True, text=True, check=True)
                    for _ in range(3)]  # fmt: skip
            grown[name] = statistics.median(int(r.stdout.split()[-1]) for r in runs)
        size = png.stat().st_size / 2**20
    print(f"10. peak RSS growth, 12 MP alpha PNG ({size:.0f} MB): probe and decode to 2048 px "
          f"through buffers {grown['decode, buffer']:.0f} MB, read in place {grown['decode, in place']:.0f} MB; "
          f"its WebP encode with the pixels copied out {grown['encode, copied out']:.0f} MB, "
          f"from the held bytes {grown['encode, held bytes']:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
