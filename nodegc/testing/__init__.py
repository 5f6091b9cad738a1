"""Test harness for real-engine tests: synthetic images and a private, disposable dockerd.

`nodegc.testing.images` builds `docker save` tarballs without any registry; `nodegc.testing.engine`
runs an isolated dockerd on its own small loop-mounted filesystem. Both need root and dockerd.
"""
