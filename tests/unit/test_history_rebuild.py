"""History lost (truncated, garbage, the wrong shape, empty, missing) is rebuilt from what the
engine shows, so the image chosen is the one chosen with history intact (the real-engine case:
tests/engine/test_lost_history.py)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from nodegc.collect.cycle import Collector
from nodegc.model import Image, RuntimeEvent
from nodegc.policy.history import uses_from_events
from nodegc.state.store import StateDir, what_is_wrong
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import NOW, Clock, ago, make_settings

IDS = {f"I{n}": "sha256:" + str(n) * 64 for n in range(1, 6)}


def node(tmp_path: Path) -> FakeRuntime:
    """I1..I5 (10 bytes each), tagged in the reverse order (I5 first: the oldest tag time), each
    used by a container that ran and was removed, I1 longest ago and I5 last: only the engine's
    events remember the runs. The disk needs one image's worth."""
    runtime = FakeRuntime(data_root=str(tmp_path), capacity_bytes=100)
    for n, (name, image_id) in enumerate(IDS.items(), start=1):
        runtime.add_image(Image(image_id, (f"app/{name.lower()}:1",), size_bytes=10),
                          tagged_at=ago(days=n))  # fmt: skip
        for action, minutes in (("create", 2), ("start", 1.9), ("die", 1)):
            when = ago(hours=6 - n) - timedelta(minutes=minutes)
            ref = f"app/{name.lower()}:1" if n % 2 else image_id[7:19]  # a tag, or a short id
            runtime.past.append(RuntimeEvent("container", action, f"c{n}", None, when, ref,
                                             image_ref=ref))  # fmt: skip
    runtime.other_used_bytes = 85 - 50 + 1  # 86 % used: 6 bytes to free down to 80 %
    return runtime


def planned(runtime: FakeRuntime, state: Path) -> list[str]:
    settings = make_settings(state, str(state), images={"high_threshold_percent": 85,
                                                        "low_threshold_percent": 80})  # fmt: skip
    gc = Collector(settings, runtime, StateDir(state), clock=Clock(NOW), measure=runtime.measure)
    plan = gc.report()
    names = {v: k for k, v in IDS.items()}
    return [names[d.image.id] for d in plan.images.removals]


def intact_history(tmp_path: Path) -> bytes:
    """history.json as nodegc kept it while the containers were there (it saw every run)."""
    state = tmp_path / "intact"
    runtime = node(tmp_path)
    gc = Collector(make_settings(state, str(state)), runtime, StateDir(state),
                   clock=Clock(NOW), measure=runtime.measure)  # fmt: skip
    gc.apply_events({IDS[f"I{n}"]: ago(hours=6 - n) - timedelta(minutes=1) for n in range(1, 6)})
    return (state / "history.json").read_bytes()


DAMAGE = {
    "truncated": lambda good: good[: len(good) // 2],
    "garbage": lambda good: b"\x00\x13garbage\xff" * 10,
    "wrong-shape": lambda good: b'[{"images": 5}]',
    "empty": lambda good: b"",
    "missing": None,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_lost_history_chooses_the_image_intact_history_chooses(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With history intact I1 (used longest ago) goes; lost, the events of the removed
    containers show I2..I5 were used after it, so I1 goes again — never I5, whose tag is the
    oldest. The log names the file and what was wrong with it."""
    good = intact_history(tmp_path)
    intact = tmp_path / "s-intact"
    intact.mkdir(mode=0o700)
    (intact / "history.json").write_bytes(good)
    assert planned(node(tmp_path), intact) == ["I1"]

    lost = tmp_path / f"s-{damage}"
    lost.mkdir(mode=0o700)
    if DAMAGE[damage] is not None:
        (lost / "history.json").write_bytes(DAMAGE[damage](good))
    with caplog.at_level(logging.INFO, "nodegc"):
        assert planned(node(tmp_path), lost) == ["I1"]
    rebuilt = [r for r in caplog.records if r.getMessage().startswith("history rebuilt")]
    assert len(rebuilt) == 1 and str(lost / "history.json") in rebuilt[0].getMessage()
    wrong = {"truncated": "truncated", "garbage": "garbage", "wrong-shape": "wrong shape",
             "empty": "empty", "missing": "missing"}[damage]  # fmt: skip
    assert wrong in rebuilt[0].getMessage()


def test_without_the_events_the_lost_history_would_choose_otherwise(tmp_path: Path) -> None:
    """The test can fail: the same node with no engine memory plans I5 (oldest tag, no use)."""
    runtime = node(tmp_path)
    runtime.past = []
    state = tmp_path / "s"
    state.mkdir(mode=0o700)
    (state / "history.json").write_bytes(b"{")
    assert planned(runtime, state) == ["I5"]


def test_events_name_images_by_listed_id_tag_in_any_form_or_id_prefix() -> None:
    a = Image("sha256:" + "a" * 64, ("busybox:latest",))
    b = Image("sha256:" + "b" * 64, ("registry.example/team/app:2",))
    t = [ago(hours=h) for h in range(6)]
    events = [
        RuntimeEvent("container", "start", "1", None, t[5], image_ref="busybox"),
        RuntimeEvent("container", "die", "2", None, t[4], image_ref="docker.io/library/busybox"),
        RuntimeEvent("container", "create", "3", None, t[3], image_ref="b" * 12),
        RuntimeEvent("container", "destroy", "4", None, t[0], image_ref="busybox"),  # not a use
        RuntimeEvent("container", "start", "5", None, t[0], image_ref="gone:1"),
        RuntimeEvent("image", "tag", a.id, a.id, t[0]),
    ]
    assert uses_from_events(events, [a, b]) == {a.id: t[4], b.id: t[3]}


@pytest.mark.parametrize(
    ("raw", "said"),
    [(b"", "empty"), (b" \n", "empty"), (b'{"version": 1, "since": "20', "truncated"),
     (b"\x00\x01\xff garbage", "garbage"), (b"[1, 2]", "wrong shape"),
     (b'{"version": 1}', "wrong shape")],
)  # fmt: skip
def test_what_is_wrong_with_a_history_file_is_said_in_a_few_words(raw: bytes, said: str) -> None:
    import json

    from nodegc.state.store import decode

    try:
        decode(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        assert said in what_is_wrong(raw, exc)
    else:
        raise AssertionError("decoded")
