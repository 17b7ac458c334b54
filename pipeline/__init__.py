"""PixelFlow's image pipeline: the job-spec DSL and the libvips engine that runs it.

The spec half (`pipeline.spec`, `pipeline.compile`, `pipeline.geometry`, `pipeline.sniff`,
`pipeline.errors`) is pure Python so the API can validate and plan jobs without libvips.
The engine half (`pipeline.engine`, `pipeline.ops`, ...) imports pyvips.
"""
