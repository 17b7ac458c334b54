"""The single measurements behind #12's engine choices (docs/BENCHMARKS.md), one thread:

    VIPS_CONCURRENCY=1 .venv/bin/python -m bench.probes     # about a minute; needs scikit-image

1. JPEG decode at 1/8 DCT scale of a 24 MP photo: pyvips-binary (mozjpeg) vs Pillow (libjpeg-turbo).
2. Resizing a 12 MP gradient-alpha image premultiplied in float vs in 8 bits: time per resize,
   and how far the 8-bit result is from the float one once composited on black and on white.
3. What the DCT-scaled decode costs in resampling: SSIM of 24 MP JPEG -> width through
   libvips' thumbnail (which keeps 2x for its own resize) and through the deepest DCT scale that
   covers the width (what PixelFlow now decodes at), both against Pillow's LANCZOS of the full
   decode (a reference neither path made).
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

    pyvips.cache_set_max(0)
    jpeg = encode(photo(6000, 4000, seed=5), ".jpg", Q=90)

    def pillow_draft() -> None:
        im = Image.open(io.BytesIO(jpeg))
        im.draft("RGB", (750, 500))
        im.load()

    ms = _interleaved(
        pyvips=lambda: pyvips.Image.new_from_buffer(jpeg, "", shrink=8).copy_memory(), pillow=pillow_draft
    )
    print(f"1. 24 MP JPEG at 1/8: pyvips-binary {ms['pyvips']:.0f} ms, Pillow {ms['pillow']:.0f} ms")

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


if __name__ == "__main__":
    main()
