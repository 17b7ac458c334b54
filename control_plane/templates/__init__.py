"""Templates (presets): a client's named, versioned job specs, how a job names one, and what
changed between two versions."""
