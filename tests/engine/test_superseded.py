"""images.keep_per_repository on a real, isolated dockerd: twelve releases of one repository,
tagged one after the other (the engine's tag time is the order), on a calm disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import busybox_image_tar
from tests.engine.helpers import MiB, nodegc, nodegc_json

RELEASES = 12
KEEP = 4
ENV = {"NODEGC_IMAGES__MINIMUM_AGE": "0s", "NODEGC_IMAGES__PINNED": '["ci/app:3"]'}
FLAG = ("--image-keep-per-repository", str(KEEP))


def release(engine: IsolatedEngine, api: docker.APIClient, repo: str, tag: int) -> str:
    """A new image (2 MiB of its own) tagged repo:tag. `docker load` leaves LastTagTime unset; the
    tag afterwards sets it, as a pull would: the engine says when each release arrived."""
    image_id = engine.load(busybox_image_tar([f"{repo}:{tag}"], extra_size_bytes=2 * MiB))
    api.tag(image_id, repo, str(tag), force=True)
    return image_id


def many_releases(engine: IsolatedEngine, api: docker.APIClient) -> dict[str, str]:
    """ci/app:1..12 (app:2 used by an exited container, app:3 pinned) and ci/tool:1..2."""
    ids = {f"ci/app:{n}": release(engine, api, "ci/app", n) for n in range(1, RELEASES + 1)}
    ids |= {f"ci/tool:{n}": release(engine, api, "ci/tool", n) for n in (1, 2)}
    engine.run_container(ids["ci/app:2"], ["true"])
    return ids


def tags_left(api: docker.APIClient) -> set[str]:
    return {t for i in api.images() for t in i.get("RepoTags") or () if t.startswith("ci/")}


def superseded_in(report: dict[str, Any]) -> set[str]:
    return {
        d["tags"][0]
        for d in report["images"]["decisions"]
        if d["action"] == "remove" and d["reason"] == "superseded"
    }


def test_report_shows_the_releases_older_than_the_newest_four_as_superseded(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """The dry run: app:1 and app:4..8 are superseded (app:2 in use, app:3 pinned, app:9..12 the
    newest four; ci/tool has two); nothing is removed, and the table says it too."""
    ids = many_releases(engine, api)
    assert engine.usage_percent() < 80  # far from any threshold: this is not disk pressure
    code, report = nodegc_json(engine, tmp_path / "s", "report", *FLAG, env=ENV)
    assert code == 0
    assert superseded_in(report) == {"ci/app:1", *(f"ci/app:{n}" for n in range(4, 9))}
    reasons = {d["tags"][0]: d["reason"] for d in report["images"]["decisions"] if d["tags"]}
    assert (reasons["ci/app:2"], reasons["ci/app:3"]) == ("in-use", "pinned")
    table = nodegc(engine, tmp_path / "s", "report", *FLAG, env=ENV).stdout
    assert any("superseded" in line and "ci/app:5" in line for line in table.splitlines())
    assert len(tags_left(api)) == len(ids)


def test_once_removes_them_whatever_the_disk_and_the_disk_shows_it(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """`once` removes the six, below every threshold; statvfs shows their 12 MiB come back."""
    many_releases(engine, api)
    before = engine.available_bytes()
    code, report = nodegc_json(engine, tmp_path / "s", "once", *FLAG, env=ENV)
    assert code == 0, report
    kept = {f"ci/app:{n}" for n in (2, 3, 9, 10, 11, 12)} | {"ci/tool:1", "ci/tool:2"}
    assert tags_left(api) == kept
    removed = [d for d in report["images"]["decisions"] if d.get("outcome") == "removed"]
    assert {d["reason"] for d in removed} == {"superseded"} and len(removed) == 6
    assert engine.available_bytes() - before >= 6 * 2 * MiB
