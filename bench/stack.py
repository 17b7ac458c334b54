"""The backing services a service benchmark runs against: Redis, PostgreSQL (migrated) and
LocalStack S3 on loopback in a temporary directory, and every process the benchmark spawns,
stopped in reverse order however the run ends."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.service import stop
from devstack.backing_services import LocalStackS3, PostgresServer, RedisServer

__all__ = ["BenchStack", "bench_stack"]


@dataclass
class BenchStack:
    work: Path
    redis: RedisServer
    pg: PostgresServer
    s3: LocalStackS3
    procs: list[subprocess.Popen] = field(default_factory=list)  # stopped on exit

    def env(self, bucket: str, **settings: str) -> dict[str, str]:
        """``PIXELFLOW_*`` for these services, no rate limit in the way; ``settings`` by name
        (``deadline_seconds="5"``)."""
        return {
            "PIXELFLOW_DATABASE_URL": self.pg.url,
            "PIXELFLOW_REDIS_URL": self.redis.url,
            "PIXELFLOW_S3_ENDPOINT": self.s3.endpoint,
            "PIXELFLOW_S3_ACCESS_KEY": self.s3.access_key,
            "PIXELFLOW_S3_SECRET_KEY": self.s3.secret_key,
            "PIXELFLOW_S3_BUCKET": bucket,
            "PIXELFLOW_WEBHOOK_ALLOW_PRIVATE": "true",
            "PIXELFLOW_RATE_LIMIT_PER_MINUTE": "10000000",
            "PIXELFLOW_RATE_LIMIT_BURST": "1000000",
            "PIXELFLOW_LOG_LEVEL": "WARNING",
            **{f"PIXELFLOW_{name.upper()}": value for name, value in settings.items()},
        }


@contextmanager
def bench_stack(prefix: str) -> Iterator[BenchStack]:
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(work, 0o755)
    stack = BenchStack(work, RedisServer(work / "redis"), PostgresServer(work / "pg"), LocalStackS3(work / "s3"))
    try:
        stack.redis.start()
        stack.pg.start()
        stack.s3.start()
        from infra.db import migrate

        migrate(stack.pg.url)
        yield stack
    finally:
        for p in reversed(stack.procs):
            stop(p)
        stack.s3.stop()
        stack.pg.stop()
        stack.redis.stop()
        shutil.rmtree(work, ignore_errors=True)
