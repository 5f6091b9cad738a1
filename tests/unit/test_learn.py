"""What a first cycle learns about new images, batch by batch (collect/learn.py)."""

from __future__ import annotations

from nodegc.collect.cycle import Collector
from nodegc.collect.learn import LAYER_BATCH
from nodegc.runtime import RuntimeUnavailable
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import NOW, ago, image, make_settings

FS_PATH = "/fake/var/lib/docker"


def collector(fake: FakeRuntime, state: StateDir) -> Collector:
    settings = make_settings(state.path, FS_PATH)
    return Collector(settings, fake, state, clock=lambda: NOW, measure=fake.measure)


def test_a_new_image_without_tag_time_is_asked_about_once(tmp_path):
    """Loaded images have no tag time: the inspect their layers took answered for it."""
    fake = FakeRuntime(capacity_bytes=1000)
    for n in range(3):
        fake.add_image(image(f"img{n}", 10))
    collector(fake, StateDir(tmp_path / "state")).report()
    assert fake.calls.count("image_tagged_at") == 1


def test_layers_learnt_before_the_engine_failed_are_saved(tmp_path):
    """The engine fails in the second batch: the first batch's layers and tag times are saved,
    and the next observation asks only about the rest."""
    fake = FakeRuntime(capacity_bytes=100_000)
    count = LAYER_BATCH + 5
    for n in range(count):
        fake.add_image(image(f"img{n}", 10), tagged_at=ago(days=3))
    state = StateDir(tmp_path / "state")
    gc = collector(fake, state)
    real = fake.image_layers
    batches = []

    def failing_second(ids):
        batches.append(list(ids))
        if len(batches) == 2:
            raise RuntimeUnavailable("fake: engine lost")
        return real(ids)

    fake.image_layers = failing_second  # type: ignore[method-assign]
    try:
        gc.report()
    except RuntimeUnavailable:
        pass
    else:
        raise AssertionError("the report should have failed")
    assert len(state.load_layers()) == LAYER_BATCH
    again = collector(fake, state)
    assert len(again.history.images) == LAYER_BATCH  # their tag times were kept
    again.report()
    assert batches[2] == batches[1]  # only the unfinished batch is asked again


def test_new_images_are_learnt_while_the_engine_says_where_it_keeps_what(tmp_path):
    """The layers of new images are asked while `/info` (where the engine keeps what: a second
    on a Podman service) is still on its way, not after it: a runtime whose answer waits for
    the first `image_layers` gets it (a collector that learns after the paths waits 10 s for
    nothing and fails)."""
    import threading

    learning = threading.Event()
    waited: list[bool] = []

    class SlowInfo(FakeRuntime):
        def filesystems(self):
            waited.append(learning.wait(timeout=10))
            return super().filesystems()

        def image_layers(self, image_ids):
            learning.set()
            return super().image_layers(image_ids)

    fake = SlowInfo(FS_PATH, capacity_bytes=1000)
    fake.add_image(image("img0", 10))
    settings = make_settings(tmp_path / "state", "")
    gc = Collector(
        settings, fake, StateDir(tmp_path / "state"), clock=lambda: NOW, measure=fake.measure
    )
    snapshot = gc.observe()
    assert waited == [True]
    assert [layer.key for layer in snapshot.layers["img0"]] == [
        layer.key for layer in fake.layers["img0"]
    ]
