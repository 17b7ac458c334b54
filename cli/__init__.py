"""The ``pixelflow`` command: local processing, and the composition roots of the services."""
