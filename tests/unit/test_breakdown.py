"""Where the space is, without an engine: Docker's `/system/df` answer read into holders, the
sums per filesystem (by role), the rest, the biggest, and what nodegc may not touch."""

from __future__ import annotations

from nodegc.cli.breakdown import describe, space_json, space_lines, untouchable_text
from nodegc.collect.usage import SpaceReport
from nodegc.holders import Holder, HolderKind
from nodegc.model import FilesystemRole, FilesystemStats
from nodegc.policy.breakdown import REST_NAME, breakdown, untouchable
from nodegc.runtime.docker_usage import (
    cache_holders,
    container_holders,
    image_holders,
    volume_holders,
)

ANON = "a" * 64
CONTAINERS = [
    {"Id": "c1", "Names": ["/web"], "State": "running", "SizeRw": 5, "ImageID": "i1",
     "Labels": {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod"},
     "Mounts": [{"Type": "volume", "Name": "data"}]},
    {"Id": "c2", "Names": ["/old"], "State": "exited", "SizeRw": 7, "ImageID": "i1", "Mounts": []},
]  # fmt: skip


def test_images_split_into_in_use_and_unused_own_bytes() -> None:
    data = {
        "LayersSize": 1000,
        "Images": [
            {"Id": "i1", "Size": 600, "SharedSize": 100, "Containers": 2},
            {"Id": "i2", "Size": 500, "SharedSize": 100, "Containers": 0},
        ],
    }
    got = {h.kind: h.size_bytes for h in image_holders(data, CONTAINERS)}
    assert got == {HolderKind.IMAGES_UNUSED: 400, HolderKind.IMAGES_IN_USE: 600}


def test_build_cache_in_use_apart_and_shared_records_left_to_the_images() -> None:
    rows = [{"Size": 10, "InUse": True}, {"Size": 20}, {"Size": 40, "Shared": True}]
    got = {h.kind: h.size_bytes for h in cache_holders(rows)}
    assert got == {HolderKind.BUILD_CACHE_IN_USE: 10, HolderKind.BUILD_CACHE_RECLAIMABLE: 20}


def test_containers_running_and_dead_with_their_pod() -> None:
    web, old = container_holders(CONTAINERS)
    assert (web.kind, web.name, web.size_bytes, web.removable, web.pod) == (
        HolderKind.CONTAINERS_RUNNING, "web", 5, False, "prod/web-0"
    )  # fmt: skip
    assert (old.kind, old.removable) == (HolderKind.CONTAINERS_DEAD, True)


def test_an_anonymous_volume_no_container_uses_is_told_apart() -> None:
    rows = [
        {"Name": "data", "UsageData": {"Size": 30, "RefCount": 1}},
        {"Name": ANON, "UsageData": {"Size": 60, "RefCount": 0}},
        {"Name": "x", "Labels": {"com.docker.volume.anonymous": ""}, "UsageData": {"Size": 9}},
        {"Name": "y", "UsageData": {"Size": -1, "RefCount": -1}},  # not computed: 0
    ]
    got = {h.name: (h.kind, h.size_bytes) for h in volume_holders(rows, CONTAINERS)}
    assert got == {
        "data": (HolderKind.VOLUMES_NAMED, 30),
        ANON: (HolderKind.VOLUMES_ANONYMOUS_UNUSED, 60),
        "x": (HolderKind.VOLUMES_ANONYMOUS_UNUSED, 9),
        "y": (HolderKind.VOLUMES_NAMED, 0),
    }


def fs(path: str, roles: tuple[FilesystemRole, ...], used: int, reserved: int = 0):
    return FilesystemStats(path, 10_000, 10_000 - used - reserved, 100, 50, roles=roles,
                           free_bytes=10_000 - used)  # fmt: skip


HOLDERS = [
    Holder(HolderKind.IMAGES_IN_USE, "images in use", 1000, False),
    Holder(HolderKind.IMAGES_UNUSED, "unused images", 300, True),
    Holder(HolderKind.CONTAINERS_RUNNING, "web", 50, False),
    Holder(HolderKind.LOGS, "web", 2000, False, path="/d/c1-json.log"),
    Holder(HolderKind.LOGS, "old", 100, True, path="/d/c2-json.log"),
    Holder(HolderKind.VOLUMES_ANONYMOUS_UNUSED, ANON, 600, False),
]


def test_each_kind_lands_on_the_filesystem_of_its_role_and_the_rest_is_what_is_left() -> None:
    images = fs("/ctd", (FilesystemRole.IMAGES, FilesystemRole.CONTAINERS), used=1500)
    root = fs("/docker", (FilesystemRole.LOGS, FilesystemRole.VOLUMES), used=3100, reserved=70)
    a, b = breakdown([images, root], HOLDERS)
    assert a.bytes_of(HolderKind.IMAGES_UNUSED) == 300 and a.bytes_of(HolderKind.LOGS) == 0
    assert a.bytes_of(HolderKind.REST) == 1500 - 1350
    assert b.bytes_of(HolderKind.LOGS) == 2100 and b.bytes_of(HolderKind.REST) == 400
    assert b.bytes_of(HolderKind.RESERVED) == 70
    assert [h.name for h in b.biggest] == ["web", ANON, "old"]
    assert HolderKind.IMAGES_IN_USE not in dict(b.by_kind)


def test_the_rest_never_goes_below_zero() -> None:
    (b,) = breakdown([fs("/d", (), used=100)], HOLDERS)
    assert b.bytes_of(HolderKind.REST) == 0


def test_untouchable_are_the_biggest_nodegc_may_not_remove_the_rest_among_them() -> None:
    root = fs("/docker", (FilesystemRole.LOGS, FilesystemRole.VOLUMES), used=3100)
    (b,) = breakdown([root], HOLDERS)
    held = untouchable(b, HOLDERS)
    assert [(h.kind, h.name) for h in held] == [
        (HolderKind.LOGS, "web"),
        (HolderKind.VOLUMES_ANONYMOUS_UNUSED, ANON),
        (HolderKind.REST, REST_NAME),
    ]
    space = SpaceReport((b,), tuple(HOLDERS))
    text = untouchable_text(space)
    assert "log of container web at /d/c1-json.log" in text and f"anonymous volume {ANON}" in text
    assert "container old" not in text  # a dead container's log goes with it: nodegc may remove it


def test_names_are_shown_escaped_and_json_keeps_them_exact() -> None:
    evil = Holder(HolderKind.VOLUMES_NAMED, "v\x1b[2J\n", 5, False)
    assert "\\x1b[2J\\n" in describe(evil)
    (b,) = breakdown([fs("/d", (), used=10)], [evil])
    space = SpaceReport((b,), (evil,))
    assert space_json(space)[0]["biggest"][0]["name"] == "v\x1b[2J\n"
    assert all("\x1b" not in line for line in space_lines(space))
    assert space_json(None) is None


def test_status_shows_the_daemons_breakdown_and_fill_rate_escaped() -> None:
    from datetime import UTC, datetime

    from nodegc.cli.status import render_conditions

    data = {
        "version": "1",
        "conditions": [],
        "details": {
            "where_the_space_is": [
                {"path": "/d", "bytes": {"logs": 2 << 20, "rest": 0},
                 "biggest": [{"kind": "logs", "name": "web\x1b[2J", "size_bytes": 2 << 20}]}
            ],
            "fill_rate": {"filesystem": "/d", "bytes_per_second": 1000.0,
                          "seconds_until_high": 60.0, "seconds_until_full": None},
        },
    }  # fmt: skip
    text = render_conditions(data, datetime.now(UTC))
    assert "where the space is on /d: logs 2.0 MiB" in text and "rest" not in text
    assert "logs web\\x1b[2J 2.0 MiB" in text and "\x1b" not in text
    assert "Fill rate of /d (the daemon's estimate): 1000.0 B/s; high threshold in 60.0 s" in text


def test_podman_images_count_without_layers_size() -> None:
    """Podman 4.3 answers `LayersSize` 0: every image's own bytes and the biggest shared part
    once. Mutation caught: images in use counted 0 on Podman."""
    data = {
        "LayersSize": 0,
        "Images": [
            {"Id": "i1", "Size": 600, "SharedSize": 100, "Containers": 1},
            {"Id": "i2", "Size": 500, "SharedSize": 100, "Containers": 0},
        ],
    }
    got = {h.kind: h.size_bytes for h in image_holders(data, CONTAINERS)}
    assert got == {HolderKind.IMAGES_UNUSED: 400, HolderKind.IMAGES_IN_USE: 600}


def test_unknown_kinds_are_null_not_zero_and_left_out_of_the_metrics() -> None:
    """A CRI runtime cannot know volumes or build cache: null in JSON, "unknown" in the table,
    no series. Mutation caught: an unknown kind reported as 0 bytes."""
    from prometheus_client import CollectorRegistry

    from nodegc.daemon.metrics import Metrics

    unknown = {HolderKind.VOLUMES_NAMED, HolderKind.VOLUMES_ANONYMOUS_UNUSED}
    (b,) = breakdown([fs("/d", (), used=5000)], HOLDERS, unknown=unknown)
    space = SpaceReport((b,), tuple(HOLDERS))
    sizes = space_json(space)[0]["bytes"]
    assert sizes["volumes_named"] is None and sizes["volumes_anonymous_unused"] is None
    assert sizes["rest"] == 5000 - (1000 + 300 + 50 + 2100)  # the volume's 600 not counted
    assert any("volumes, named or in use" in t and "unknown" in t for t in space_lines(space))
    assert ANON not in {h.name for h in untouchable(b)}
    registry = CollectorRegistry()
    Metrics(registry).observe_space(space)
    labels = {"filesystem": "/d", "kind": "volumes_named"}
    assert registry.get_sample_value("nodegc_filesystem_bytes", labels) is None
    labels["kind"] = "logs"
    assert registry.get_sample_value("nodegc_filesystem_bytes", labels) == 2100


def test_a_file_holder_lands_on_the_filesystem_it_was_found_on() -> None:
    """A CRI log in the kubelet's pod log directory: on the filesystem of its device, whatever
    the roles (none says logs there); by role where its device is not measured."""
    images = FilesystemStats("/ctd", 10_000, 9_000, 100, 50, roles=(FilesystemRole.IMAGES,),
                             device=7)  # fmt: skip
    root = FilesystemStats("/", 10_000, 5_000, 100, 50, roles=(), device=8)
    log = Holder(HolderKind.LOGS, "web", 4000, False, path="/var/log/pods/x/0.log", device=8)
    a, b = breakdown([images, root], [log])
    assert a.bytes_of(HolderKind.LOGS) == 0 and b.bytes_of(HolderKind.LOGS) == 4000
    assert [h.name for h in untouchable(b)] == ["web", REST_NAME]
    (alone,) = breakdown([images], [log])  # device 8 not measured: by role (none for logs)
    assert alone.bytes_of(HolderKind.LOGS) == 0


def test_cri_log_bytes_count_the_rotated_files(tmp_path) -> None:
    """The kubelet rotates `0.log` into `0.log.<time>` (and .gz) beside it. Mutation caught:
    the current file alone."""
    import os

    from nodegc.runtime.cri_usage import log_bytes

    current = tmp_path / "0.log"
    current.write_bytes(b"x" * 10_000)
    (tmp_path / "0.log.20260101-000000.gz").write_bytes(b"y" * 20_000)
    (tmp_path / "1.log").write_bytes(b"z" * 40_000)  # another attempt's: not this one's
    size, device = log_bytes(str(current))
    blocks = sum(
        os.lstat(tmp_path / n).st_blocks * 512 for n in ("0.log", "0.log.20260101-000000.gz")
    )
    assert (size, device) == (blocks, os.lstat(current).st_dev)
    assert log_bytes(str(tmp_path / "missing.log")) == (0, None)


def test_status_shows_a_fill_rate_line_per_filesystem_once() -> None:
    """`details.fill_rates` (every watched filesystem) shown one line each; `fill_rate` (the
    image filesystem's, one of them) not again. Mutation caught: the container filesystem's
    estimate not shown, or the image filesystem's twice."""
    from datetime import UTC, datetime

    from nodegc.cli.status import render_conditions

    rates = [
        {"filesystem": "/images", "bytes_per_second": 0.0, "seconds_until_high": None,
         "seconds_until_full": None},
        {"filesystem": "/data", "bytes_per_second": 5000.0, "seconds_until_high": 30.0,
         "seconds_until_full": 90.0},
    ]  # fmt: skip
    data = {
        "version": "1",
        "conditions": [],
        "details": {"fill_rate": rates[0], "fill_rates": rates},
    }
    text = render_conditions(data, datetime.now(UTC))
    assert text.count("Fill rate of /images") == 1, text
    assert (
        "Fill rate of /data (the daemon's estimate): 5000.0 B/s; high threshold in 30.0 s" in text
    )
