"""Test harness for real-engine tests: synthetic images and private, disposable engines.

`nodegc.testing.images` builds `docker save` tarballs without any registry;
`nodegc.testing.engine`, `podman` and `containerd` run an isolated dockerd, Podman service or
containerd (CRI) on its own small loop-mounted filesystem; `engine_root` and `rooted` run newer
engines from a cached Debian root; `matrix` is the engine matrix the core scenarios run on;
`processes` holds the process/mount/loop helpers they share; `buildkit` runs BuildKit builds.
All need root.
"""
