"""The engine in-process vs in its sandbox child, interleaved: what isolation costs per job.

    .venv/bin/python -m bench.sandbox [--runs 25]

One libvips thread (as workers run it), ``bench.service``'s 1 MP JPEG and three variants.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import msgspec

from bench.service import SPEC


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=25)
    args = ap.parse_args(argv)

    from devstack.imagegen import encode, photo
    from pipeline.dsl import Limits, decode_job_spec, encode_job_spec
    from pipeline.engine import process
    from pipeline.sandbox import EngineRequest, Sandbox, SandboxConfig
    from pipeline.vips import configure_vips

    configure_vips(concurrency=1)
    data = encode(photo(1200, 830, seed=3), ".jpg", Q=85)
    spec = decode_job_spec(msgspec.json.encode(SPEC))
    request = EngineRequest(data, encode_job_spec(spec), Limits())
    sandbox = Sandbox(SandboxConfig(vips_concurrency=1))
    sandbox.start()
    inline: list[float] = []
    isolated: list[float] = []
    try:
        for _ in range(args.runs + 3):  # the first three warm both up
            t = time.perf_counter()
            process(data, spec, limits=Limits())
            inline.append(time.perf_counter() - t)
            t = time.perf_counter()
            sandbox.run(request, timeout=60)
            isolated.append(time.perf_counter() - t)
    finally:
        sandbox.close()
    a, b = statistics.median(inline[3:]) * 1000, statistics.median(isolated[3:]) * 1000
    print(
        f"| in-process ms | sandboxed ms | cost |\n|---|---|---|\n| {a:.1f} | {b:.1f} | {b - a:+.1f} ms ({b / a - 1:+.1%}) |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
