"""Workload `one` with thumbor's own PIL engine. Runs inside thumbor's virtualenv (thumbor pins
its own Pillow), started by bench/engine.py:

    .venv-thumbor/bin/python bench/thumbor_runner.py SOURCE...

Prints JSON: mean seconds per source for one timed pass (after a warm-up pass), output bytes of
the first source, and VmHWM in MB.
"""

from __future__ import annotations

import json
import sys
import time


def cover_webp(data: bytes, size: int = 500, quality: int = 80) -> bytes:
    from thumbor.config import Config
    from thumbor.context import Context
    from thumbor.engines.pil import Engine

    engine = Engine(Context(config=Config()))
    engine.load(data, ".jpg")
    w, h = engine.size
    scale = max(size / w, size / h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    engine.resize(nw, nh)
    left, top = (nw - size) // 2, (nh - size) // 2
    engine.crop(left, top, left + size, top + size)
    return engine.read(".webp", quality)


def main() -> None:
    sources = [open(p, "rb").read() for p in sys.argv[1:]]  # noqa: SIM115
    first = [cover_webp(d) for d in sources]  # warm-up
    times = []
    for d in sources:
        t = time.perf_counter()
        cover_webp(d)
        times.append(time.perf_counter() - t)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))  # noqa: SIM115
    print(json.dumps({"mean_s": sum(times) / len(times), "bytes": len(first[0]), "rss_mb": hwm / 1024}))


if __name__ == "__main__":
    main()
