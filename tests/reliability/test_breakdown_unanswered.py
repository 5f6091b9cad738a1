"""`report` on a node where `/system/df` does not answer in time (issue 20's big node: dockerd
20.10 took 21 s for it at 5,000 images and 20,000 containers, past the request timeout), on a
real dockerd behind the fault proxy that stalls only that request: the breakdown is an
explanation, never worth failing the report for — the plan is printed, exit 0, `breakdown`
null and a warning naming why."""

from __future__ import annotations

import json

from nodegc.testing.faultproxy import Fault, FaultProxy
from tests.engine.helpers import nodegc
from tests.reliability.scene import Scene


def test_report_goes_on_without_a_breakdown_when_system_df_does_not_answer(
    scene: Scene, proxy: FaultProxy
) -> None:
    """Catches: `explain` letting the timeout (RuntimeUnavailable) through, which made `report`
    exit 3 with nothing printed (7 of 8 reports at 5k/20k under load)."""
    rule = proxy.add(Fault.stall(), method="GET", path=r"/system/df$")
    proc = nodegc(
        None, scene.state, "report", "--config", str(scene.config), "--output", "json",
        endpoint=proxy.endpoint, env={"NODEGC_LOG__LEVEL": "warning"}, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert rule.hits >= 1, "the report never asked where the space is"
    data = json.loads(proc.stdout)
    assert data["breakdown"] is None
    planned = {d["id"] for d in data["images"]["decisions"] if d["action"] == "remove"}
    assert set(scene.victims) <= planned, data["images"]
    assert "did not answer in time" in proc.stderr
