"""Random valid specs over small sources of every input format, each run in the engine child.

    .venv/bin/python -m bench.fuzz --specs 2000 --seed 1      # a long run (about 0.2 s a spec)
    .venv/bin/python -m bench.fuzz --specs 100000 --minutes 20  # as many as fit in 20 minutes
    .venv/bin/python -m bench.fuzz --seed 1 --only 417        # one case again, to reproduce it

Every job must succeed or fail with a code its input explains (``devstack.specgen.INPUT_CAUSED``);
any other outcome, and any engine child that had to be replaced (a crash retried on a fresh child
succeeds, so restarts are counted separately), is a defect: each is printed with its seed, index,
source and spec. Exits 1 when there was one. Even cases run on one libvips thread (as a worker's
engine does), odd ones on libvips' default (as ``pixelflow run`` does for one image). The
generator is ``devstack/specgen.py``, shared with ``tests/engine/test_spec_fuzz.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from devstack.specgen import INPUT_CAUSED, LIMITS, Case, assets, case_at, sources
from pipeline.dsl import decode_job_spec, encode_job_spec
from pipeline.errors import PipelineError
from pipeline.sandbox import EngineRequest, Sandbox, SandboxConfig

# A hang guard per case, not a speed limit: the slowest case of the suite's seed (20260423 #541,
# an animated GIF into lossless JPEG XL and eight more variants) takes ~14 s of CPU, which a
# loaded 2-core machine stretched past a minute.
TIMEOUT_SECONDS = 300.0
# libvips threads per engine child, taken in turn: 1 as in a worker, the default as in `pixelflow
# run` for one image (whose variants then encode side by side)
ENGINE_THREADS = (1, None)


@dataclass
class Tally:
    tried: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # input-caused codes
    restarts: Counter[str] = field(default_factory=Counter)  # children replaced, but recycling
    defects: list[tuple[str, Case]] = field(default_factory=list)  # (what went wrong, the case)

    def summary(self) -> str:
        failed = ", ".join(f"{code} {n}" for code, n in sorted(self.failed.items())) or "none"
        restarts = ", ".join(f"{why} {n}" for why, n in sorted(self.restarts.items())) or "none"
        return (
            f"tried {self.tried} specs: {self.succeeded} succeeded, {sum(self.failed.values())} failed for their "
            f"input ({failed}); {len(self.defects)} defects; engine children replaced: {restarts}"
        )


def run_cases(
    cases: Iterable[Case],
    *,
    sandboxes: list[Sandbox],
    images: dict[str, bytes],
    store: dict[str, bytes],
    on_defect: Callable[[str, Case], object] = lambda what, case: None,
    on_failure: Callable[[PipelineError, Case], object] = lambda exc, case: None,
) -> Tally:
    """Run each case and sort the outcomes; cases take turns over ``sandboxes`` by index. Children
    replaced are the caller's to count, through each sandbox's ``on_restart`` (see ``main``)."""
    tally = Tally()
    for case in cases:
        tally.tried += 1
        spec = encode_job_spec(decode_job_spec(case.spec, LIMITS))
        request = EngineRequest(images[case.source], spec, LIMITS, store)
        what = None
        try:
            result = sandboxes[case.index % len(sandboxes)].run(request, timeout=TIMEOUT_SECONDS)
        except PipelineError as exc:
            if exc.code in INPUT_CAUSED:
                tally.failed[exc.code] += 1
                on_failure(exc, case)
            else:
                what = f"{exc.code}: {exc.public} ({exc.detail})"
        except Exception as exc:  # EngineCanceled or worse: a defect all the same
            what = f"{type(exc).__name__}: {exc}"
        else:
            if len(result.variants) == len(case.spec["pipeline"]):
                tally.succeeded += 1
            else:
                what = f"{len(result.variants)} variants for a spec of {len(case.spec['pipeline'])}"
        if what is not None:
            tally.defects.append((what, case))
            on_defect(what, case)
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", type=int, default=2000, help="how many specs to try")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="the first index (cases are numbered per seed)")
    ap.add_argument("--only", type=int, help="run just this index, and print its spec")
    ap.add_argument("--minutes", type=float, help="stop after this long, even before --specs")
    ap.add_argument("--every", type=int, default=100, help="print progress every N specs")
    ap.add_argument("--show", action="append", default=[], metavar="CODE", help="print each failure with this code")
    args = ap.parse_args(argv)

    images = {name: s.data for name, s in sources(args.seed).items()}
    indexes = [args.only] if args.only is not None else range(args.start, args.start + args.specs)
    cases = (case_at(args.seed, i, list(images)) for i in indexes)
    restarts: Counter[str] = Counter()
    sandboxes = [
        Sandbox(SandboxConfig(vips_concurrency=threads), on_restart=lambda why: restarts.update([why]))
        for threads in ENGINE_THREADS
    ]
    started = time.monotonic()

    def on_defect(what: str, case: Case) -> None:
        print(f"DEFECT {what}\n  {case.describe()}", flush=True)

    def on_failure(exc: PipelineError, case: Case) -> None:
        if exc.code in args.show:
            print(f"{exc.code}: {exc.public} ({exc.detail})\n  {case.describe()}", flush=True)

    def progress(each: Iterable[Case]) -> Iterable[Case]:
        for n, case in enumerate(each, 1):
            if args.minutes is not None and time.monotonic() - started > args.minutes * 60:
                return
            if args.only is not None:
                print(case.describe(), flush=True)
            yield case
            if n % args.every == 0:
                print(f"{n} specs, {time.monotonic() - started:.0f} s, restarts {dict(restarts)}", flush=True)

    try:
        tally = run_cases(
            progress(cases),
            sandboxes=sandboxes,
            images=images,
            store=assets(args.seed),
            on_defect=on_defect,
            on_failure=on_failure,
        )
    finally:
        for sandbox in sandboxes:
            sandbox.close()
    tally.restarts = Counter({why: n for why, n in restarts.items() if why != "recycled"})
    print(json.dumps({"seed": args.seed, "seconds": round(time.monotonic() - started)}))
    print(tally.summary())
    return 1 if tally.defects or tally.restarts else 0


if __name__ == "__main__":
    sys.exit(main())
