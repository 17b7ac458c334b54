"""A worker SIGTERMed mid-job, as the kubelet does on a rollout, a scale-down or a node drain:
the job that can finish within ``PIXELFLOW_WORKER_DRAIN_SECONDS`` finishes, the one that cannot
is handed back and finished by another worker, and the process exits within drain +
``HANDBACK_SECONDS``, the sum the worker Deployment's terminationGracePeriodSeconds is checked
against (tests/deploy/test_manifests.py). Nothing is lost. The drain is 12 s here instead of
production's 30 so the test stays short; the bound is the same formula. The jobs are sized so
that, even on a loaded machine, one ends well inside the drain and the other well after it."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime

import pytest

from data_plane.worker import HANDBACK_SECONDS
from devstack.imagegen import encode, photo
from tests.deploy.manifests import one, pod_spec
from tests.integration.conftest import Stack, wait_status
from tests.integration.test_lifecycle import SLOW, TERMINAL, alive, busy_engine, engines, lane, start

pytestmark = pytest.mark.integration

DRAIN = 12.0


async def test_sigterm_mid_job_finishes_or_hands_back_within_the_grace_period(stack: Stack) -> None:
    grace = pod_spec(one("Deployment", "pixelflow-worker"))["terminationGracePeriodSeconds"]
    async with lane(stack, "k8s-drain", deadline_seconds="300", worker_drain_seconds=str(DRAIN)) as ln:
        t = await ln.tenant()
        # AVIF at effort 9 (one uninterruptible libaom call): ~25 s at 960x720, ~2 s at 240x180 on
        # an idle core; a loaded machine that gives each a quarter of a core still ends the short
        # one inside the 12 s drain
        long = await start(t, SLOW, encode(photo(960, 720, seed=21), ".jpg"))
        await wait_status(t, long, {"processing"}, timeout=30)
        worker = ln.workers[0]
        assert worker.proc is not None
        first = await busy_engine(worker)
        short = await start(t, SLOW, encode(photo(240, 180, seed=22), ".jpg"))
        await wait_status(t, short, {"processing"}, timeout=30)
        await busy_engine(worker, besides=first)  # both engines encoding
        children = engines(worker)
        asked, asked_at = time.monotonic(), datetime.now(UTC)
        worker.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.proc.wait, DRAIN + HANDBACK_SECONDS + 10)
        exited = time.monotonic() - asked
        print(f"\n[drain {DRAIN:g} s] worker exited {exited:.2f} s after SIGTERM (grace period {grace} s)")
        assert exited <= DRAIN + HANDBACK_SECONDS
        assert worker.proc.returncode == 0
        assert not [p for p in children if alive(p)], "an engine outlived its worker"

        finished = (await t.http.get(f"/v1/jobs/{short}")).json()
        assert finished["status"] == "succeeded" and finished["attempts"] == 1, finished
        assert datetime.fromisoformat(finished["finished_at"]) > asked_at, "it had finished before the SIGTERM"
        handed = (await t.http.get(f"/v1/jobs/{long}")).json()
        assert handed["status"] == "queued" and handed["attempts"] == 1, handed

        ln.workers.append(ln.worker(1).start())
        final = await wait_status(t, long, TERMINAL, timeout=180)
        assert final["status"] == "succeeded" and final["attempts"] == 2, final
        await t.http.aclose()
