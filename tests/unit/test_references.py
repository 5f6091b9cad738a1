"""The one reference grammar (nodegc/references.py), used by the policy's pin patterns
(`familiar_forms`) and the CRI runtime's name matching (`normalize_reference`)."""

from __future__ import annotations

import pytest

from nodegc.policy.images import familiar_forms as policy_forms
from nodegc.references import familiar_forms, normalized, parse
from nodegc.runtime.cri import normalize_reference

DIGEST = "sha256:" + "b" * 64
IMAGE_ID = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("reference", "domain", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "", ""),
        ("busybox:1", "docker.io", "library/busybox", "1", ""),
        ("library/busybox:1", "docker.io", "library/busybox", "1", ""),
        ("docker.io/busybox:1", "docker.io", "library/busybox", "1", ""),
        ("index.docker.io/busybox:1", "docker.io", "library/busybox", "1", ""),
        ("registry-1.docker.io/busybox:1", "docker.io", "library/busybox", "1", ""),
        ("docker.io/library/busybox:1", "docker.io", "library/busybox", "1", ""),
        ("myorg/app:2", "docker.io", "myorg/app", "2", ""),
        ("docker.io/myorg/app", "docker.io", "myorg/app", "", ""),
        ("localhost/app:3", "localhost", "app", "3", ""),
        ("localhost:5000/team/app:3", "localhost:5000", "team/app", "3", ""),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", ""),
        (f"registry.k8s.io/pause@{DIGEST}", "registry.k8s.io", "pause", "", DIGEST),
        (f"busybox:1@{DIGEST}", "docker.io", "library/busybox", "1", DIGEST),
    ],
)
def test_a_reference_splits_into_domain_path_tag_and_digest(reference, domain, path, tag, digest):
    ref = parse(reference)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


def test_a_port_in_the_domain_is_not_a_tag():
    """localhost:5000/app: the colon is the port's; no tag."""
    assert parse("localhost:5000/app").tag == ""
    assert normalized("localhost:5000/app") == "localhost:5000/app:latest"


def test_a_first_component_with_a_dot_is_a_registry():
    assert parse("quay.io/org/app:1").domain == "quay.io"


def test_a_first_component_without_dot_port_or_localhost_is_a_hub_namespace():
    assert parse("org/app:1").name == "docker.io/org/app"


@pytest.mark.parametrize(
    ("reference", "normal"),
    [
        ("pause:3.9", "docker.io/library/pause:3.9"),
        ("busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox:1", "docker.io/library/busybox:1"),
        ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
        ("registry-1.docker.io/busybox:1", "docker.io/library/busybox:1"),
        ("registry-1.docker.io/myorg/app", "docker.io/myorg/app:latest"),
        ("nodegc-test/pause:1", "docker.io/nodegc-test/pause:1"),
        ("localhost/app", "localhost/app:latest"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        (f"registry.k8s.io/pause@{DIGEST}", f"registry.k8s.io/pause@{DIGEST}"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        (IMAGE_ID, IMAGE_ID),
    ],
)
def test_the_runtime_normalizes_as_containerd_names_images(reference, normal):
    """normalize_reference is the grammar's: `:latest` only without tag and digest."""
    assert normalize_reference(reference) == normal == normalized(reference)


@pytest.mark.parametrize(
    ("reference", "forms"),
    [
        ("busybox:1", {"busybox:1", "docker.io/library/busybox:1"}),
        (
            "docker.io/busybox:1",
            {"docker.io/busybox:1", "docker.io/library/busybox:1", "busybox:1"},
        ),
        (
            "index.docker.io/busybox:1",
            {"index.docker.io/busybox:1", "docker.io/library/busybox:1", "busybox:1"},
        ),
        (
            "registry-1.docker.io/library/busybox:1",
            {"registry-1.docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"},
        ),
        ("docker.io/library/busybox:1", {"docker.io/library/busybox:1", "busybox:1"}),
        ("myorg/app:2", {"myorg/app:2", "docker.io/myorg/app:2"}),
        ("docker.io/myorg/app:2", {"docker.io/myorg/app:2", "myorg/app:2"}),
        ("docker.io/library/team/app:2", {"docker.io/library/team/app:2", "library/team/app:2"}),
        (f"busybox@{DIGEST}", {f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"}),
        ("busybox", {"busybox", "docker.io/library/busybox"}),
        ("localhost/app:3", {"localhost/app:3"}),
        ("localhost:5000/app:3", {"localhost:5000/app:3"}),
        ("registry.k8s.io/pause:3.9", {"registry.k8s.io/pause:3.9"}),
        (IMAGE_ID, {IMAGE_ID}),
    ],
)
def test_familiar_forms_are_every_form_people_write(reference, forms):
    assert familiar_forms(reference) == forms


def test_the_policy_and_the_runtime_share_one_grammar():
    """The issue's disagreement: docker.io/busybox:1 has the form containerd lists it under."""
    assert normalize_reference("docker.io/busybox:1") in policy_forms("docker.io/busybox:1")


@pytest.mark.parametrize(
    "reference",
    [
        "busybox:1",
        "docker.io/busybox:1",
        "registry-1.docker.io/busybox:1",
        "myorg/app:2",
        "localhost:5000/app:3",
        f"registry.k8s.io/pause@{DIGEST}",
    ],
)
def test_every_form_normalizes_to_the_same_name(reference):
    """Whatever form is written, containerd's name is one."""
    assert {normalized(f) for f in familiar_forms(reference)} == {normalized(reference)}
