"""Seed a sandbox engine with what a busy node holds, for the README's demo.

    python -m nodegc.testing.demo --state-file F [--fill-percent 92]

F is the state file of `python -m nodegc.testing.engine start`. The node gets: a pause image
(pinned by nodegc's defaults), a running service, a pod container that restarted three times
(dead containers over the kubelet's one-per-container cap), a finished compose job, images of
old releases nobody uses, and a filler file that pushes the disk past the high threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import busybox_image_tar

MiB = 1024 * 1024

POD_LABELS = {
    "io.kubernetes.pod.uid": "6f1c2b9e-demo",
    "io.kubernetes.pod.name": "checkout-7d9f",
    "io.kubernetes.pod.namespace": "shop",
    "io.kubernetes.container.name": "worker",
}
COMPOSE_LABELS = {
    "com.docker.compose.project": "reports",
    "com.docker.compose.service": "nightly",
}


def seed(engine: IsolatedEngine, fill_percent: int) -> None:
    api = engine.api()

    def image(tag: str, size_mb: int) -> str:
        image_id = engine.load(busybox_image_tar([tag], extra_size_bytes=size_mb * MiB))
        # `docker load` leaves LastTagTime unset; a pull sets it. Tagging again stands in for the
        # pull, so nodegc learns each image's arrival time as it would on a real node.
        repository, _, name = tag.rpartition(":")
        api.tag(image_id, repository, name, force=True)
        return image_id

    image("registry.k8s.io/pause:3.9", 1)
    web = image("shop/web:2.4", 40)
    worker = image("shop/worker:1.8", 30)
    nightly = image("reports/nightly:5", 25)
    for old in ("shop/web:2.1", "shop/web:2.2", "shop/web:2.3", "shop/worker:1.6"):
        image(old, 45)
        time.sleep(0.05)  # distinct arrival order for readers of the report
    engine.run_container(web, ["sleep", "3600"], name="web", wait=False)
    for attempt in range(3):
        engine.run_container(worker, ["sh", "-c", f"exit {attempt + 1}"], labels=POD_LABELS)
    engine.run_container(nightly, ["true"], labels=COMPOSE_LABELS, name="reports-nightly-1")
    engine.fill_to_percent(fill_percent)
    api.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodegc.testing.demo", description=__doc__)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--fill-percent", type=int, default=92)
    args = parser.parse_args(argv)
    state = json.loads(args.state_file.read_text())
    engine = IsolatedEngine.attach(state)
    try:
        seed(engine, args.fill_percent)
    finally:
        engine.detach()  # the engine outlives this process; `engine stop` removes it
    print(f"seeded; filesystem {state['mountpoint']} is {engine.usage_percent()}% used")
    return 0


if __name__ == "__main__":
    sys.exit(main())
