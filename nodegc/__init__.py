"""nodegc: node-level garbage collection of container images and dead containers."""

__version__ = "0.1.0"
