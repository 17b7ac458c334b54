"""Development support, not the product: the backing servers (Redis, PostgreSQL, LocalStack S3)
run as child processes on loopback, the ``pixelflow up`` demo, a recording webhook receiver and
photo-like images made in code. The tests, the benchmarks and ``pixelflow up`` import it; the
service itself never does (an import-linter contract holds that)."""
