"""BuildKit build cache chains on every Docker engine of the matrix.

Two builds of a multi-stage Dockerfile with four RUN steps of 8 MiB each make two chains of
four records (each step's record is the parent of the next); the images are removed, so the
records are unshared. The images' filesystem at 92%, 85/75: one `once` must reach the low
threshold in one cycle, exit 0, never have a removal `skipped` (Docker 26 and 28 give `Parent`
null for every record: a parent tried before its child is refused), keep some record
`target-reached`, and say what the disk got back.

Mutations caught: trusting `Parent` alone for the order (parents tried first, refused, the cycle
short of low), pruning everything (below low - 6), measuring another filesystem, per-record
figures that are not the disk's.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from nodegc.testing.buildkit import build
from nodegc.testing.images import BUSYBOX_TAG, busybox_image_tar
from nodegc.testing.matrix import Node
from tests.conftest import matrix_params
from tests.matrix.helpers import (
    ANY_AGE,
    THRESHOLDS,
    available,
    check_closed_loop,
    fill_to_start,
    run_json,
)

BUILDS, STEP_MIB = 2, 8
ENV = {"NODEGC_BUILD_CACHE__MINIMUM_AGE": "0s"}
DOCKERFILE = """\
FROM {base} AS first
RUN echo {nonce} > /nonce && dd if=/dev/urandom of=/1 bs=1M count={mib}
RUN dd if=/dev/urandom of=/2 bs=1M count={mib}
FROM first
RUN dd if=/dev/urandom of=/3 bs=1M count={mib}
RUN dd if=/dev/urandom of=/4 bs=1M count={mib}
"""


def build_chains(node: Node) -> None:
    """BUILDS chains of four records each; their images removed (the records unshared)."""
    engine = node.engine
    for n in range(BUILDS):
        context = engine.root / f"ctx-{n}"
        context.mkdir()
        text = DOCKERFILE.format(base=BUSYBOX_TAG, nonce=secrets.token_hex(8), mib=STEP_MIB)
        (context / "Dockerfile").write_text(text)
        build(engine, context, f"chain/{n}:1")
    with node.api() as api:
        for n in range(BUILDS):
            api.remove_image(f"chain/{n}:1")
        records = api.df().get("BuildCache") or []
    assert len([r for r in records if r["Size"] >= STEP_MIB * 1024 * 1024]) >= 4 * BUILDS


@pytest.mark.parametrize("node", matrix_params(builds=True), indirect=True)
def test_build_cache_chains_come_back_to_low_in_one_cycle(node: Node, tmp_path: Path) -> None:
    node.load([busybox_image_tar(labels={"nodegc.io/pinned": "true"})])
    build_chains(node)
    fill_to_start(node)

    before = available(node)
    code, out = run_json(node, tmp_path / "state", "once", *THRESHOLDS, ANY_AGE, env=ENV)
    after = available(node)

    decisions = out["build_cache"]["decisions"]
    outcomes = [(d["id"][:12], d["reason"], d.get("outcome")) for d in decisions]
    assert not [d for d in decisions if d.get("outcome") == "skipped"], outcomes
    removed = [d for d in decisions if d.get("outcome") == "removed"]
    said = sum(d["frees_bytes"] for d in removed) + out["images"]["bytes_freed"]
    check_closed_loop(node, code, out, before, after, freed=said)
    assert out["images"]["target_reached"] is True
    # Not asserted: a record kept `target-reached` by the plan. Whether the plan needs every
    # unshared record depends on which records the engine still calls shared, and with the
    # containerd store that follows containerd's own GC of the removed images (2 in 10 runs
    # here planned them all); overshoot is what matters, and check_closed_loop bounds it.
