"""An image DELETE whose answer was lost (issue 20's leftover), on a real dockerd behind the
fault proxy: the engine carries out every DELETE by id and the proxy resets the connection
after the answer. nodegc never sends one again; it looks (an inspect, a read) and records the
image `removed` when the engine says it is gone, as it already did for containers."""

from __future__ import annotations

import json

import docker

from nodegc.testing.faultproxy import Fault, FaultProxy
from tests.reliability.scene import Scene, outcomes
from tests.reliability.test_flaky import deletes_sent_twice

BY_ID = r"/images/sha256:[0-9a-f]{64}$"


def test_an_image_delete_whose_answer_was_lost_is_removed_when_gone_and_never_resent(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient
) -> None:
    """Catches: counting such a removal `failed` (no look after the lost answer; exit 1), and
    sending the DELETE again (a blind retry). The multi-tag victim's untags by name answer
    normally; only the last step, by id, loses its answer."""
    rule = proxy.add(Fault.reset(after=True), method="DELETE", path=BY_ID)
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 0, proc.stderr
    assert rule.hits == len(scene.victims)  # every victim's DELETE by id lost its answer
    assert deletes_sent_twice(proxy) == []
    left = {i["Id"] for i in api.images(all=True)}
    assert not left & set(scene.victims), "the engine carried out every DELETE"
    images = outcomes(json.loads(proc.stdout), "images")
    assert {images[v] for v in scene.victims} == {"removed"}, images
    sent = proxy.requests
    for victim in scene.victims:  # the outcome comes from a look after the lost answer
        deleted = sent.index(next(r for r in sent if r[0] == "DELETE" and victim in r[1]))
        assert any(m == "GET" and f"{victim}/json" in p for m, p in sent[deleted + 1 :]), victim
    scene.check_nothing_kept_was_lost(api)
