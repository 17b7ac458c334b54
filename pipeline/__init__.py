"""PixelFlow's image pipeline: the job-spec DSL and the libvips engine that runs it.

The DSL half (`pipeline.dsl`, `pipeline.compile`, `pipeline.cost`, `pipeline.geometry`, `pipeline.sniff`,
`pipeline.svg`, `pipeline.errors`) is pure Python so the API can validate and plan jobs without libvips.
The engine half (`pipeline.engine`, `pipeline.load`, `pipeline.ops`, `pipeline.encode`, ...) imports pyvips.
"""
