"""Settings: kubelet defaults, flags > NODEGC_ env > TOML > defaults, and every validation rule."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodegc.config import ConfigError, load_settings, to_toml
from nodegc.config import settings as config
from nodegc.durations import format_duration, parse_duration


@pytest.fixture(autouse=True)
def _no_system_config(tmp_path, monkeypatch):
    # /etc/nodegc/config.toml on the test machine must not leak into the defaults.
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "absent" / "config.toml")


@pytest.fixture
def toml(tmp_path):
    """Write TOML text to a file and return its path."""

    def write(text: str, name: str = "config.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def load(path=None, overrides=None, environ=None):
    return load_settings(path, overrides, environ if environ is not None else {})


def error_of(path=None, overrides=None, environ=None) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, overrides, environ)
    return str(info.value)


# -- defaults -------------------------------------------------------------------------------------


def test_image_defaults_are_the_kubelets():
    """high 85, low 80, minimum age 2m, maximum age 0s (off)."""
    s = load()
    assert (
        s.images.high_threshold_percent,
        s.images.low_threshold_percent,
        s.images.minimum_age,
        s.images.maximum_age,
    ) == (85, 80, timedelta(minutes=2), timedelta(0))


def test_container_defaults_are_the_kubelets():
    """0s minimum age, 1 dead container per pod container, no global limit (-1)."""
    s = load()
    assert (
        s.containers.minimum_age,
        s.containers.max_per_pod_container,
        s.containers.max_dead_containers,
        s.containers.maximum_age,
    ) == (timedelta(0), 1, -1, timedelta(0))


def test_default_periods_are_the_kubelets():
    """Image GC every 5 minutes, container GC every minute."""
    s = load()
    assert (s.images.gc_period, s.containers.gc_period) == (
        timedelta(minutes=5),
        timedelta(minutes=1),
    )


def test_default_pins_cover_the_pause_image():
    """The sandbox image is pinned out of the box."""
    assert load().images.pinned == ["registry.k8s.io/pause:*", "k8s.gcr.io/pause:*"]


# -- precedence -----------------------------------------------------------------------------------


HIGH_ENV = "NODEGC_IMAGES__HIGH_THRESHOLD_PERCENT"


def test_toml_file_overrides_defaults(toml):
    """A value in the file replaces the default; the rest stay default."""
    s = load(toml("[images]\nhigh_threshold_percent = 90\n"))
    assert (s.images.high_threshold_percent, s.images.low_threshold_percent) == (90, 80)


def test_environment_overrides_the_file(toml):
    """NODEGC_<SECTION>__<KEY> beats the file."""
    s = load(toml("[images]\nhigh_threshold_percent = 90\n"), environ={HIGH_ENV: "95"})
    assert s.images.high_threshold_percent == 95


def test_flags_override_the_environment(toml):
    """Command-line overrides beat the environment and the file."""
    s = load(
        toml("[images]\nhigh_threshold_percent = 90\n"),
        {"images": {"high_threshold_percent": 97}},
        {HIGH_ENV: "95"},
    )
    assert s.images.high_threshold_percent == 97


def test_layers_merge_key_by_key_within_a_section(toml):
    """A flag for one key keeps the file's and environment's other keys of the same section."""
    s = load(
        toml('[images]\nlow_threshold_percent = 60\nminimum_age = "5m"\n'),
        {"images": {"high_threshold_percent": 97}},
        {"NODEGC_IMAGES__MINIMUM_AGE": "1m"},
    )
    assert (
        s.images.high_threshold_percent,
        s.images.low_threshold_percent,
        s.images.minimum_age,
    ) == (97, 60, timedelta(minutes=1))


def test_a_whole_section_from_the_environment_merges_with_the_file_and_flags(toml):
    """NODEGC_IMAGES holding the section as JSON: its keys beat the file's, a flag beats it, and
    the file's other keys stay."""
    s = load(
        toml('[images]\nlow_threshold_percent = 60\nminimum_age = "5m"\n'),
        {"images": {"high_threshold_percent": 97}},
        {"NODEGC_IMAGES": '{"high_threshold_percent": 90, "minimum_age": "1m"}'},
    )
    assert (
        s.images.high_threshold_percent,
        s.images.low_threshold_percent,
        s.images.minimum_age,
    ) == (97, 60, timedelta(minutes=1))


def test_a_section_from_the_environment_that_is_not_json_is_refused():
    """NODEGC_IMAGES='nonsense': a configuration error naming the environment, not a traceback."""
    message = error_of(environ={"NODEGC_IMAGES": "nonsense"})
    assert message.startswith("environment: ") and '"images"' in message


def test_a_start_without_nodegc_variables_does_not_import_pydantic_settings(tmp_path):
    """File and flags alone: the environment's reader (pydantic-settings, which imports asyncio)
    is not imported; with a NODEGC_ variable it is, and the variable is read."""
    path = tmp_path / "config.toml"  # given, so that no /etc/nodegc/config.toml is read
    path.write_text('[images]\nminimum_age = "5m"\n')
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from nodegc.config import load_settings\n"
        f"s = load_settings(Path({str(path)!r}), {{'images': {{'low_threshold_percent': 70}}}})\n"
        "print(s.images.high_threshold_percent, s.images.low_threshold_percent, "
        "'pydantic_settings' in sys.modules, 'asyncio' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NODEGC_")}
    run = functools.partial(
        subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert run(env=env).stdout.split() == ["85", "70", "False", "False"]
    env[HIGH_ENV] = "90"
    assert run(env=env).stdout.split() == ["90", "70", "True", "True"]


def test_environment_names_are_case_insensitive():
    """nodegc_images__high_threshold_percent works like the upper-case form."""
    s = load(environ={"nodegc_images__high_threshold_percent": "90"})
    assert s.images.high_threshold_percent == 90


def test_environ_parameter_replaces_the_process_environment(monkeypatch):
    """With `environ`, a NODEGC_ variable in os.environ is not read (and not rejected)."""
    monkeypatch.setenv(HIGH_ENV, "99")
    monkeypatch.setenv("NODEGC_NO_SUCH_SETTING", "1")
    assert load(environ={}).images.high_threshold_percent == 85


def test_environ_parameter_restores_the_process_environment(monkeypatch):
    """After the call os.environ is as it was."""
    monkeypatch.setenv("NODEGC_TEST_MARKER", "kept")
    before = dict(os.environ)
    load(environ={HIGH_ENV: "90"})
    assert dict(os.environ) == before


def test_process_environment_is_read_without_environ(monkeypatch):
    """environ=None reads os.environ."""
    monkeypatch.setenv(HIGH_ENV, "91")
    assert load_settings(None, None, None).images.high_threshold_percent == 91


def test_environment_durations_are_parsed():
    """A duration from the environment uses the same Go syntax."""
    s = load(environ={"NODEGC_CONTAINERS__MINIMUM_AGE": "1h30m"})
    assert s.containers.minimum_age == timedelta(hours=1, minutes=30)


def test_environment_list_is_json():
    """A list setting from the environment is a JSON array."""
    s = load(environ={"NODEGC_IMAGES__PINNED": '["myapp:*", "busybox:*"]'})
    assert s.images.pinned == ["myapp:*", "busybox:*"]


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["high_threshold_percent", "low_threshold_percent"])
@pytest.mark.parametrize("value", [-1, 101])
def test_threshold_outside_0_100_is_rejected(key, value):
    """Each threshold must be within [0, 100]; the message names it and the value."""
    message = error_of(overrides={"images": {key: value}})
    assert f"images.{key} = {value}" in message


def test_threshold_from_toml_outside_range_is_rejected(toml):
    """The same rule applies to the file."""
    message = error_of(toml("[images]\nhigh_threshold_percent = 150\n"))
    assert "images.high_threshold_percent = 150" in message


@pytest.mark.parametrize(("low", "high"), [(85, 85), (90, 85), (100, 100)])
def test_low_not_below_high_is_rejected(low, high):
    """low_threshold_percent must be strictly below high_threshold_percent."""
    message = error_of(
        overrides={"images": {"low_threshold_percent": low, "high_threshold_percent": high}}
    )
    assert f"images.low_threshold_percent = {low}" in message
    assert f"images.high_threshold_percent ({high})" in message


@pytest.mark.parametrize(
    "setting",
    [
        "images.minimum_age",
        "images.maximum_age",
        "images.pressure_check_period",
        "containers.minimum_age",
        "containers.maximum_age",
    ],
)
def test_negative_duration_is_rejected(setting):
    """Durations must not be negative; the message names the setting and the value."""
    section, key = setting.split(".")
    message = error_of(overrides={section: {key: "-5m"}})
    assert f"{setting} = -5m" in message
    assert "negative" in message


@pytest.mark.parametrize("setting", ["images.gc_period", "containers.gc_period", "runtime.timeout"])
def test_zero_period_is_rejected(setting):
    """Periods and timeouts must be above 0s."""
    section, key = setting.split(".")
    assert f"{setting} = 0s" in error_of(overrides={section: {key: "0s"}})


@pytest.mark.parametrize("section", ["images", "containers"])
@pytest.mark.parametrize(("min_age", "max_age"), [("5m", "5m"), ("10m", "5m")])
def test_maximum_age_not_above_minimum_age_is_rejected(section, min_age, max_age):
    """maximum_age, when set, must exceed minimum_age."""
    message = error_of(overrides={section: {"minimum_age": min_age, "maximum_age": max_age}})
    assert f"{section}.maximum_age = {max_age}" in message
    assert f"{section}.minimum_age ({min_age})" in message


def test_maximum_age_zero_is_off_whatever_the_minimum_age():
    """maximum_age 0s is allowed with any minimum_age."""
    s = load(overrides={"images": {"minimum_age": "1h", "maximum_age": "0s"}})
    assert s.images.maximum_age == timedelta(0)


def test_maximum_age_above_minimum_age_is_accepted():
    """maximum_age above minimum_age is valid."""
    assert load(overrides={"images": {"maximum_age": "3m"}}).images.maximum_age == timedelta(
        minutes=3
    )


def test_unknown_top_level_key_in_toml_is_rejected(toml):
    """A misspelt section in the file is an error naming it."""
    message = error_of(toml("[imagez]\nhigh_threshold_percent = 90\n"))
    assert message.startswith("imagez: unknown setting")


def test_unknown_key_in_a_toml_section_is_rejected(toml):
    """A misspelt key in a section is an error naming section.key."""
    message = error_of(toml("[images]\nhigh_treshold_percent = 90\n"))
    assert message.startswith("images.high_treshold_percent: unknown setting")


def test_unknown_nodegc_environment_variable_is_rejected():
    """A NODEGC_ variable naming no setting is a typo, reported by name."""
    message = error_of(environ={"NODEGC_IMAGES__HIGH_TRESHOLD": "90"})
    assert "NODEGC_IMAGES__HIGH_TRESHOLD" in message


def test_other_environment_variables_are_ignored():
    """Variables without the NODEGC_ prefix are none of nodegc's business."""
    assert load(environ={"NODEGCX": "1", "PATH": "/bin"}).images.high_threshold_percent == 85


def test_invalid_environment_value_names_the_setting_and_value():
    """A value from the environment that does not validate names the setting and the value."""
    message = error_of(environ={HIGH_ENV: "lots"})
    assert "images.high_threshold_percent = 'lots'" in message


def test_unparseable_environment_list_names_the_setting():
    """A list variable that is not JSON names images.pinned and the value."""
    message = error_of(environ={"NODEGC_IMAGES__PINNED": "myapp:*"})
    assert "images.pinned" in message
    assert "myapp:*" in message


@pytest.mark.parametrize("value", ["abc", "5", "5 m", "1m30", "", "m"])
def test_bad_duration_string_names_the_setting_and_value(value):
    """A duration that does not parse names the setting and the text."""
    message = error_of(overrides={"images": {"minimum_age": value}})
    assert message.startswith(f"images.minimum_age = {value!r}")


@pytest.mark.parametrize("value", ["1.5x", "2.5d", "1.5 s"])
def test_bad_duration_string_with_a_dot_names_the_setting(value):
    """A bad duration containing a '.' is still reported with its setting's name."""
    message = error_of(overrides={"images": {"minimum_age": value}})
    assert "images.minimum_age" in message
    assert value in message


@pytest.mark.parametrize(("value", "shown"), [(90, "90"), (True, "True")])
def test_duration_without_unit_names_the_setting(value, shown):
    """A bare number (or boolean) where a duration belongs is refused with the setting's name."""
    message = error_of(overrides={"images": {"minimum_age": value}})
    assert message.startswith(f"images.minimum_age = {shown}")


def test_float_duration_without_unit_names_the_setting(toml):
    """minimum_age = 1.5 (no unit) in the file names the setting."""
    message = error_of(toml("[images]\nminimum_age = 1.5\n"))
    assert "images.minimum_age" in message
    assert "1.5" in message


def test_empty_pin_pattern_is_rejected():
    """A blank pattern in images.pinned is refused."""
    assert "images.pinned" in error_of(overrides={"images": {"pinned": ["ok:*", "  "]}})


def test_bad_metrics_address_is_rejected():
    """metrics.address must be host:port."""
    assert "metrics.address = 'localhost'" in error_of(
        overrides={"metrics": {"address": "localhost"}}
    )


def test_bad_endpoint_is_rejected():
    """runtime.endpoint needs a scheme."""
    assert "runtime.endpoint = '/var/run/docker.sock'" in error_of(
        overrides={"runtime": {"endpoint": "/var/run/docker.sock"}}
    )


def test_every_problem_gets_its_own_line():
    """Two independent problems: two lines, one per setting."""
    message = error_of(
        overrides={"images": {"high_threshold_percent": 101}, "metrics": {"address": "x"}}
    )
    lines = message.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("images.high_threshold_percent = 101")
    assert lines[1].startswith("metrics.address = 'x'")


def test_missing_config_file_is_an_error(tmp_path):
    """--config naming no file is an error naming the path."""
    path = tmp_path / "nope.toml"
    message = error_of(path)
    assert str(path) in message
    assert "not found" in message


def test_config_path_that_is_a_directory_is_an_error(tmp_path):
    """--config naming a directory is an error, not a traceback."""
    assert "is a directory" in error_of(tmp_path)


def test_invalid_toml_is_an_error(toml):
    """A file that is not TOML is an error naming the file."""
    path = toml("[images\nhigh = ")
    message = error_of(path)
    assert str(path) in message
    assert "not valid TOML" in message


def test_default_config_file_is_used_when_present(tmp_path, monkeypatch):
    """With no --config, /etc/nodegc/config.toml is read when it exists."""
    path = tmp_path / "etc-config.toml"
    path.write_text("[containers]\nmax_dead_containers = 7\n")
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", path)
    assert load().containers.max_dead_containers == 7


# -- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("2m", timedelta(minutes=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("1.5s", timedelta(seconds=1.5)),
        ("1.5h", timedelta(minutes=90)),
        ("300ms", timedelta(milliseconds=300)),
        ("2h45m10s", timedelta(hours=2, minutes=45, seconds=10)),
        ("-1m", timedelta(minutes=-1)),
        (" 5m ", timedelta(minutes=5)),
        ("1500us", timedelta(microseconds=1500)),
    ],
)
def test_parse_duration(text, expected):
    """Go duration strings parse to the same timedelta."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m", "1x", "1m30", "1.5.5s", "5 m", "1d", "--1s"])
def test_parse_duration_rejects_non_durations(text):
    """Anything but a Go duration raises ValueError showing the accepted form."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(0), "0s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(days=2), "48h"),
        (timedelta(minutes=-5), "-5m"),
    ],
)
def test_format_duration(value, text):
    """Durations format as the shortest Go string."""
    assert format_duration(value) == text


@pytest.mark.parametrize(
    "value",
    [
        timedelta(milliseconds=1),
        timedelta(microseconds=1500),
        timedelta(microseconds=10),
        timedelta(seconds=59, microseconds=999999),
        timedelta(hours=1, microseconds=1),
    ],
    ids=["1ms", "1500us", "10us", "59.999999s", "1h0.000001s"],
)
def test_sub_second_durations_round_trip(value):
    """Formatting then parsing keeps every microsecond (Go prints them all)."""
    assert parse_duration(format_duration(value)) == value


@given(st.integers(-(10**8), 10**8).map(lambda s: timedelta(seconds=s)))
def test_property_whole_second_durations_round_trip(value):
    """parse(format(d)) == d for every whole-second timedelta."""
    assert parse_duration(format_duration(value)) == value


# -- to_toml --------------------------------------------------------------------------------------


def test_to_toml_of_defaults_loads_back_equal(toml):
    """The default settings written as TOML load back to equal settings."""
    s = load()
    assert load(toml(to_toml(s))) == s


SECONDS = st.integers(0, 10**6)
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)


@st.composite
def settings_overrides(draw):
    high = draw(st.integers(1, 100))
    min_img = draw(SECONDS)
    min_ctr = draw(SECONDS)
    return {
        "images": {
            "high_threshold_percent": high,
            "low_threshold_percent": draw(st.integers(0, high - 1)),
            "minimum_age": timedelta(seconds=min_img),
            "maximum_age": draw(
                st.one_of(
                    st.just(timedelta(0)), SECONDS.map(lambda s: timedelta(seconds=min_img + 1 + s))
                )
            ),
            "pinned": draw(st.lists(TEXT.filter(lambda t: t.strip()), max_size=3)),
            "filesystem_path": draw(TEXT),
        },
        "containers": {
            "minimum_age": timedelta(seconds=min_ctr),
            "max_per_pod_container": draw(st.integers(-1, 50)),
            "max_dead_containers": draw(st.integers(-1, 5000)),
            "maximum_age": draw(
                st.one_of(
                    st.just(timedelta(0)), SECONDS.map(lambda s: timedelta(seconds=min_ctr + 1 + s))
                )
            ),
            "gc_period": timedelta(seconds=draw(st.integers(1, 10**6))),
        },
        "state": {"directory": draw(TEXT.filter(lambda t: t.strip()))},  # empty: refused
        "metrics": {"enabled": draw(st.booleans())},
        "log": {"format": draw(st.sampled_from(["auto", "json", "text"]))},
    }


@given(settings_overrides())
def test_property_to_toml_loads_back_to_equal_settings(tmp_path_factory, overrides):
    """For any valid settings, the TOML from to_toml loads back to equal settings."""
    s = load(overrides=overrides)
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_text(to_toml(s), encoding="utf-8")
    assert load(path) == s


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ("[images]\nhigh_threshold_percent = true\n", "images.high_threshold_percent"),
        ("[images]\nlow_threshold_percent = false\n", "images.low_threshold_percent"),
        ('[images]\nhigh_threshold_percent = "90"\n', "images.high_threshold_percent"),
        ('[containers]\nmax_dead_containers = "5"\n', "containers.max_dead_containers"),
        ("[runtime]\nmax_concurrent_removals = true\n", "runtime.max_concurrent_removals"),
    ],
)
def test_a_boolean_or_a_quoted_number_in_the_file_is_refused(toml, text, setting):
    """TOML's `true` is not 1 and "90" is not 90: one line naming the setting."""
    message = error_of(toml(text))
    assert message.startswith(setting), message
    assert len(message.splitlines()) == 1, message


def test_a_number_in_the_environment_is_text_and_reads_as_a_number():
    """NODEGC_IMAGES__HIGH_THRESHOLD_PERCENT=90 is 90; =true is refused naming the setting."""
    assert (
        load(environ={"NODEGC_IMAGES__HIGH_THRESHOLD_PERCENT": "90"}).images.high_threshold_percent
        == 90
    )
    message = error_of(environ={"NODEGC_IMAGES__HIGH_THRESHOLD_PERCENT": "true"})
    assert "images.high_threshold_percent" in message
