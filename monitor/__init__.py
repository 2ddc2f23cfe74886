"""The repmon daemon runtime: pipeline, storage, scheduling, CLI."""
