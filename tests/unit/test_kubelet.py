"""Living beside the kubelet: reading its config, deriving nodegc's settings, what it would do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from nodegc.cli.kubelet import kubelet_json, kubelet_would
from nodegc.config import ConfigError, ImageSettings, load_settings
from nodegc.config import settings as config
from nodegc.config.kubelet import (
    Eviction,
    KubeletConfigError,
    KubeletGC,
    merge_overrides,
    overrides_from_kubelet,
    parse_kubelet_config,
    read_kubelet_config,
)
from nodegc.model import FilesystemStats
from nodegc.policy.kubelet import kubelet_bytes_to_free

GIB = 2**30

HEADER = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


# -- builders -------------------------------------------------------------------------------------
def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    """A kubelet config file holding `text`."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse(body: str) -> KubeletGC:
    """Parse a KubeletConfiguration made of the standard header and `body`."""
    return parse_kubelet_config(HEADER + body, source="test.yaml")


def parse_error(body: str) -> str:
    """The message parsing HEADER + `body` fails with."""
    with pytest.raises(KubeletConfigError) as info:
        parse(body)
    return str(info.value)


def disk(used_percent: float, capacity_gib: int = 100) -> FilesystemStats:
    """A filesystem of `capacity_gib` GiB with `used_percent` of it used."""
    capacity = capacity_gib * GIB
    available = round(capacity * (100 - used_percent) / 100)
    return FilesystemStats("/var/lib/docker", capacity, available, 1000, 500)


def kubelet(**fields: object) -> KubeletGC:
    """A KubeletGC with the kubelet's defaults, except `fields`."""
    return KubeletGC(**fields)  # type: ignore[arg-type]


# -- reading the file -----------------------------------------------------------------------------
def test_missing_file_error_names_the_path(tmp_path: Path) -> None:
    """A missing file is a KubeletConfigError that names the path."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(KubeletConfigError, match=str(path)):
        read_kubelet_config(path)


def test_directory_is_refused(tmp_path: Path) -> None:
    """A directory given as the file is refused with a clear message."""
    with pytest.raises(KubeletConfigError, match="is a directory"):
        read_kubelet_config(tmp_path)


def test_error_is_a_config_error(tmp_path: Path) -> None:
    """KubeletConfigError is a ConfigError, so the command line reports it as one (exit 2)."""
    with pytest.raises(ConfigError):
        read_kubelet_config(tmp_path / "absent.yaml")


def test_file_without_gc_keys_gives_kubelet_defaults(tmp_path: Path) -> None:
    """Absent keys take the kubelet's defaults: 85/80, 2m, 0s, imagefs.available<15%."""
    k = read_kubelet_config(write(tmp_path, HEADER))
    assert (k.high_threshold_percent, k.low_threshold_percent) == (85, 80)
    assert (k.minimum_age, k.maximum_age) == (timedelta(minutes=2), timedelta(0))
    assert k.imagefs_eviction == Eviction(percent=15)


def test_source_is_the_path(tmp_path: Path) -> None:
    """The result remembers the file it came from."""
    path = write(tmp_path, HEADER)
    assert read_kubelet_config(path).source == str(path)


def test_reads_every_gc_key() -> None:
    """The four image GC keys are read (the runtime endpoint beside them is ignored)."""
    k = parse(
        "imageGCHighThresholdPercent: 90\n"
        "imageGCLowThresholdPercent: 75\n"
        "imageMinimumGCAge: 5m0s\n"
        "imageMaximumGCAge: 168h0m0s\n"
        "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n"
    )
    assert (k.high_threshold_percent, k.low_threshold_percent) == (90, 75)
    assert (k.minimum_age, k.maximum_age) == (timedelta(minutes=5), timedelta(days=7))


def test_quoted_strings_and_comments() -> None:
    """Quoted durations and trailing comments read as YAML reads them."""
    k = parse("imageMinimumGCAge: '3m'  # three minutes\nimageMaximumGCAge: \"1h\" # one hour\n")
    assert (k.minimum_age, k.maximum_age) == (timedelta(minutes=3), timedelta(hours=1))


def test_nested_blocks_and_lists_are_skipped() -> None:
    """Nested mappings and lists of other settings do not disturb the keys nodegc reads."""
    k = parse(
        "authentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n"
        "clusterDNS:\n- 10.96.0.10\n"
        "imageGCHighThresholdPercent: 70\n"
        "imageGCLowThresholdPercent: 60\n"
    )
    assert (k.high_threshold_percent, k.low_threshold_percent) == (70, 60)


def test_json_file_is_read(tmp_path: Path) -> None:
    """A JSON KubeletConfiguration (as some managed nodes ship) is read too."""
    text = '{"kind": "KubeletConfiguration", "imageGCHighThresholdPercent": 88}'
    assert read_kubelet_config(write(tmp_path, text, "config.json")).high_threshold_percent == 88


def test_crlf_and_byte_order_mark_are_accepted() -> None:
    """Windows line ends and a UTF-8 byte-order mark do not break the reader."""
    text = "\ufeff" + HEADER.replace("\n", "\r\n") + "imageGCHighThresholdPercent: 95\r\n"
    assert parse_kubelet_config(text).high_threshold_percent == 95


def test_other_kind_is_refused() -> None:
    """A file of another kind is refused, naming the kind."""
    with pytest.raises(KubeletConfigError, match="'Pod'"):
        parse_kubelet_config("apiVersion: v1\nkind: Pod\n")


def test_other_api_group_is_refused() -> None:
    """An apiVersion outside kubelet.config.k8s.io is refused."""
    with pytest.raises(KubeletConfigError, match="apiVersion"):
        parse_kubelet_config("apiVersion: v1\nkind: KubeletConfiguration\n")


def test_low_not_below_high_is_refused() -> None:
    """Low at or above high is refused, as the kubelet refuses it."""
    message = parse_error("imageGCHighThresholdPercent: 80\nimageGCLowThresholdPercent: 80\n")
    assert "must be below imageGCHighThresholdPercent (80)" in message


def test_threshold_out_of_range_is_refused() -> None:
    """A threshold above 100 is refused, naming the key."""
    assert "imageGCHighThresholdPercent = 101" in parse_error("imageGCHighThresholdPercent: 101\n")


def test_quoted_threshold_is_refused() -> None:
    """A quoted number is a string, which the kubelet refuses; so does nodegc, saying why."""
    assert "remove the quotes" in parse_error('imageGCHighThresholdPercent: "90"\n')


def test_malformed_duration_names_the_key() -> None:
    """A duration that does not parse is refused, naming the key."""
    assert "imageMinimumGCAge" in parse_error("imageMinimumGCAge: soon\n")


def test_negative_duration_is_refused() -> None:
    """A negative age is refused."""
    assert "must not be negative" in parse_error("imageMinimumGCAge: -2m\n")


def test_numeric_duration_is_refused() -> None:
    """A bare number is no duration (the kubelet wants a string such as 2m0s)."""
    assert "must be a duration" in parse_error("imageMinimumGCAge: 120\n")


def test_maximum_age_not_above_minimum_is_refused() -> None:
    """A maximum age at or below the minimum age is refused."""
    message = parse_error("imageMinimumGCAge: 10m\nimageMaximumGCAge: 5m\n")
    assert "imageMaximumGCAge (5m) must be above imageMinimumGCAge (10m)" in message


def test_second_document_is_refused() -> None:
    """A file with two YAML documents is refused."""
    assert "second YAML document" in parse_error("---\nkind: Other\n")


def test_line_that_is_not_a_key_is_refused() -> None:
    """A top-level line that is not `key: value` is refused with its line number."""
    assert "line 3" in parse_error("this is not yaml\n")


def test_eviction_percent_is_read() -> None:
    """evictionHard's imagefs.available percentage is read."""
    k = parse('evictionHard:\n  imagefs.available: "10%"\n  memory.available: 100Mi\n')
    assert k.imagefs_eviction == Eviction(percent=10)


def test_eviction_quantity_is_read() -> None:
    """evictionHard's imagefs.available as a quantity is read in bytes."""
    assert parse("evictionHard: {imagefs.available: 5Gi}\n").imagefs_eviction == Eviction(
        bytes=5 * GIB
    )


def test_eviction_without_imagefs_is_unknown() -> None:
    """An evictionHard that leaves imagefs.available out makes no eviction claim."""
    assert parse("evictionHard:\n  memory.available: 100Mi\n").imagefs_eviction is None


# -- deriving nodegc's settings -------------------------------------------------------------------
def test_margin_is_subtracted_from_both_thresholds() -> None:
    """high and low are the kubelet's minus the margin."""
    images = overrides_from_kubelet(kubelet(), 5)["images"]
    assert (images["high_threshold_percent"], images["low_threshold_percent"]) == (80, 75)


def test_thresholds_are_clamped_with_low_below_high() -> None:
    """A margin larger than the thresholds clamps them to 1 and 0."""
    k = kubelet(high_threshold_percent=10, low_threshold_percent=5)
    images = overrides_from_kubelet(k, 20)["images"]
    assert (images["high_threshold_percent"], images["low_threshold_percent"]) == (1, 0)


def test_margin_out_of_range_is_refused() -> None:
    """A negative margin is a ValueError."""
    with pytest.raises(ValueError, match="margin"):
        overrides_from_kubelet(kubelet(), -1)


def test_minimum_age_takes_the_kubelets_when_longer() -> None:
    """nodegc's minimum age is raised to the kubelet's when the kubelet's is longer."""
    k = kubelet(minimum_age=timedelta(minutes=10))
    assert overrides_from_kubelet(k, 5)["images"]["minimum_age"] == "10m"


def test_minimum_age_keeps_nodegcs_when_longer() -> None:
    """nodegc's own longer minimum age is kept."""
    base = ImageSettings(minimum_age="1h")
    assert overrides_from_kubelet(kubelet(), 5, base=base)["images"]["minimum_age"] == "1h"


def test_maximum_age_rises_to_the_kubelets() -> None:
    """A nodegc maximum age shorter than the kubelet's becomes the kubelet's."""
    k = kubelet(maximum_age=timedelta(days=7))
    base = ImageSettings(maximum_age="24h")
    assert overrides_from_kubelet(k, 5, base=base)["images"]["maximum_age"] == "168h"


def test_maximum_age_off_stays_off() -> None:
    """nodegc's maximum age stays off (absent from the overrides) whatever the kubelet's."""
    k = kubelet(maximum_age=timedelta(days=7))
    assert "maximum_age" not in overrides_from_kubelet(k, 5)["images"]


def test_maximum_age_below_derived_minimum_is_an_error() -> None:
    """A nodegc maximum age under the kubelet's minimum age is refused, naming both."""
    k = kubelet(minimum_age=timedelta(hours=2))
    base = ImageSettings(maximum_age="1h")
    with pytest.raises(KubeletConfigError, match=r"images.maximum_age = 1h.*2h"):
        overrides_from_kubelet(k, 5, base=base)


def test_overrides_load_as_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The overrides are valid input to load_settings."""
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    k = kubelet(minimum_age=timedelta(minutes=5))
    settings = load_settings(None, overrides_from_kubelet(k, 5), environ={})
    assert settings.images.high_threshold_percent == 80
    assert settings.images.minimum_age == timedelta(minutes=5)


def test_merge_later_layer_wins_per_key() -> None:
    """merge_overrides merges sections, a later layer winning key by key."""
    merged = merge_overrides(
        {"images": {"high_threshold_percent": 80, "low_threshold_percent": 75}},
        {"images": {"high_threshold_percent": 90}, "log": {"level": "debug"}},
    )
    assert merged == {
        "images": {"high_threshold_percent": 90, "low_threshold_percent": 75},
        "log": {"level": "debug"},
    }


# -- what the kubelet would do --------------------------------------------------------------------
def test_below_high_threshold_frees_nothing() -> None:
    """Below its high threshold the kubelet frees nothing."""
    line = kubelet_would(disk(83), kubelet())
    assert (
        line == "kubelet (85/80): usage 83% is below its high threshold 85%; it would free nothing"
    )


def test_at_high_threshold_frees_down_to_low() -> None:
    """At its high threshold the kubelet frees capacity*(100-low)/100 - available."""
    line = kubelet_would(disk(85), kubelet())
    assert "at or above its high threshold 85%; it would free 5.0 GiB" in line
    assert line.endswith("to reach 80%")


def test_disk_gc_off_is_said() -> None:
    """A high threshold of 100 turns the kubelet's disk-based image GC off."""
    line = kubelet_would(disk(99), kubelet(high_threshold_percent=100))
    assert "its image GC by disk usage is off" in line


def test_maximum_age_is_mentioned() -> None:
    """A kubelet maximum age is mentioned whatever the usage."""
    line = kubelet_would(disk(10), kubelet(maximum_age=timedelta(days=7)))
    assert line.endswith("images unused for 168h go in any case")


def test_eviction_is_mentioned_past_its_threshold() -> None:
    """Past imagefs.available<15% the eviction manager is mentioned."""
    assert "imagefs.available<15% its eviction manager" in kubelet_would(disk(90), kubelet())


def test_eviction_bytes_threshold_is_compared_in_bytes() -> None:
    """An absolute eviction threshold compares available bytes."""
    k = kubelet(imagefs_eviction=Eviction(bytes=20 * GIB))
    assert "eviction manager" in kubelet_would(disk(81), k)


def test_no_eviction_claim_when_unknown() -> None:
    """An unknown eviction threshold is never mentioned."""
    assert "eviction" not in kubelet_would(disk(99), kubelet(imagefs_eviction=None))


def test_bytes_to_free_uses_the_kubelets_formula() -> None:
    """At 90% of 100 GiB with low 80, the kubelet frees 10 GiB."""
    assert kubelet_bytes_to_free(disk(90), kubelet()) == 10 * GIB


def test_bytes_to_free_is_zero_below_high() -> None:
    """Below the high threshold the kubelet frees nothing."""
    assert kubelet_bytes_to_free(disk(84), kubelet()) == 0


def test_json_carries_the_summary_line() -> None:
    """The JSON form carries the thresholds, the bytes and the same one-line summary."""
    data = kubelet_json(disk(90), kubelet())
    assert (data["high_threshold_percent"], data["bytes_to_free"]) == (85, 10 * GIB)
    assert data["eviction_reached"] is True
    assert data["summary"] == kubelet_would(disk(90), kubelet())
