"""Bad input: generated config files, environment and flags; hostile engine data.

Configuration: `nodegc config --check` exits 0 or 2, with exactly one line per problem on stderr
and never a traceback (in-process through nodegc.cli.main for speed, plus a few real processes).
Engine data: odd and very long tags, untagged and `<none>` images, digests only, missing labels,
thousands of objects and images vanishing between listing and removal are handled, through the
FakeRuntime and on the real engine.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import string
import tomllib
import typing
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import docker
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegc import cli
from nodegc.cli import render
from nodegc.collect.cycle import Collector
from nodegc.config import Settings, load_settings
from nodegc.model import Container, ContainerState, Image, Outcome
from nodegc.runtime.docker.decoding import decode_container as _container
from nodegc.runtime.docker.decoding import decode_image as _image
from nodegc.state.audit import AuditLog, read_audit
from nodegc.state.store import StateDir
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.fake import FakeRuntime
from nodegc.testing.images import build_image_tar
from tests.engine.helpers import nodegc

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- the settings, as the code declares them ----------------------------------------------------
SETTINGS: dict[str, dict[str, Any]] = {
    section: dict(field.annotation.model_fields)  # type: ignore[union-attr]
    for section, field in Settings.model_fields.items()
}
KNOWN = sorted((s, k) for s, keys in SETTINGS.items() for k in keys)


def invalid_value(section: str, key: str) -> Any:
    """A value that breaks exactly one rule of the setting: the wrong kind of value."""
    annotation = SETTINGS[section][key].annotation
    if annotation is bool:
        return "maybe"
    if annotation is int:
        return "many"
    if annotation is timedelta:
        return "forever"
    if typing.get_origin(annotation) is list:
        return 5
    if typing.get_origin(annotation) is typing.Literal:
        return "no-such-choice"
    return {"nested": 1}  # a table where a string is due


# -- a small TOML writer (tomllib only reads) ---------------------------------------------------
def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def toml_key(key: str) -> str:
    bare = key and all(c in string.ascii_letters + string.digits + "_-" for c in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def toml_document(doc: Mapping[str, Any]) -> str:
    """Scalars first, then each table as a [section] of its own."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_key(name)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# -- running the CLI in this process ------------------------------------------------------------
@contextlib.contextmanager
def nodegc_logger_restored() -> Iterator[None]:
    """cli.main sets up the "nodegc" logger: put it back as it was afterwards."""
    logger = logging.getLogger("nodegc")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def run_cli(argv: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `nodegc ARGV` run in this process, with only `env` as
    NODEGC_* environment."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("NODEGC_")}
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, {**clean, **(env or {})}, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        nodegc_logger_restored(),
    ):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # --help or --version by a generated abbreviation
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def problems(code: int, out: str, err: str) -> list[str]:
    """The stderr lines of a check, after the rules every check obeys."""
    assert "Traceback" not in err and "Traceback" not in out
    assert code in (0, 2), (code, err)
    lines = err.splitlines()
    if code == 0:
        assert lines == [], err
        return []
    assert lines, "exit 2 without saying why"
    assert all(line.startswith("nodegc") and line.strip() for line in lines), err
    assert len(set(lines)) == len(lines), f"a problem reported twice:\n{err}"
    return lines


def check_config_file(tmp_path: Path, text: str | bytes) -> tuple[int, str, str]:
    path = tmp_path / "config.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return run_cli(["config", "--check", "--config", str(path)])


# -- strategies ---------------------------------------------------------------------------------
names = st.text(string.ascii_lowercase + "_-.", min_size=1, max_size=12)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=40),
    st.sampled_from(["90s", "2m", "1h30m", "0s", "-5m", "1.5h", "99999999999999999h", "10",
                     "85", "true", "", "unix:///x.sock", "tcp://[::1]:1", "127.0.0.1:0"]),
    st.datetimes(timezones=st.just(UTC)),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
section_names = st.sampled_from(sorted(SETTINGS)) | names
key_names = st.sampled_from(sorted({k for keys in SETTINGS.values() for k in keys})) | names
documents = st.dictionaries(
    section_names,
    st.dictionaries(key_names, values, max_size=5) | values,
    max_size=5,
)


# -- configuration files ------------------------------------------------------------------------
@PROPERTY
@given(doc=documents)
def test_generated_config_files_exit_0_or_2_with_one_clean_line_per_problem(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    """Any document of known and unknown sections, keys and values: 0, or 2 with clean lines."""
    problems(*check_config_file(tmp_path, toml_document(doc)))


@PROPERTY
@given(
    broken=st.lists(st.sampled_from(KNOWN), unique=True, max_size=6),
    unknown_keys=st.lists(st.tuples(st.sampled_from(sorted(SETTINGS)), names), max_size=3),
    unknown_sections=st.lists(names, max_size=2),
)
def test_config_file_with_n_problems_says_exactly_n_lines_naming_each(
    tmp_path: Path,
    broken: list[tuple[str, str]],
    unknown_keys: list[tuple[str, str]],
    unknown_sections: list[str],
) -> None:
    """Wrong-kind values, unknown keys and unknown sections: one line each, naming it."""
    doc: dict[str, Any] = {}
    expected: list[str] = []
    for section, key in broken:
        doc.setdefault(section, {})[key] = invalid_value(section, key)
        expected.append(f"{section}.{key}")
    for section, key in unknown_keys:
        name = f"x-{key}"
        if name not in doc.get(section, {}):
            doc.setdefault(section, {})[name] = 1
            expected.append(f"{section}.{name}")
    for name in {f"x-{s}" for s in unknown_sections}:
        doc[name] = {"a": 1}
        expected.append(name)
    lines = problems(*check_config_file(tmp_path, toml_document(doc)))
    assert len(lines) == len(expected), (expected, lines)
    for setting in expected:
        assert sum(setting in line for line in lines) >= 1, (setting, lines)


@PROPERTY
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_config_files_that_are_not_toml_exit_2_with_one_line(tmp_path: Path, data: bytes) -> None:
    """Random bytes as a config file: valid (rarely) or one line, never a traceback."""
    lines = problems(*check_config_file(tmp_path, data))
    try:
        tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        assert len(lines) == 1 and "config file" in lines[0], lines


def test_config_file_path_that_is_a_directory_or_missing_is_one_line(tmp_path: Path) -> None:
    """--config naming a directory or nothing: exit 2, one line each."""
    for path in (tmp_path, tmp_path / "missing.toml"):
        lines = problems(*run_cli(["config", "--check", "--config", str(path)]))
        assert len(lines) == 1 and str(path) in lines[0]


# -- environment --------------------------------------------------------------------------------
env_names = st.sampled_from(
    [f"NODEGC_{s}__{k}".upper() for s, k in KNOWN] + [f"NODEGC_{s}".upper() for s in SETTINGS]
) | names.map(lambda n: f"NODEGC_{n.upper().replace('.', '_')}")
env_values = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=30
) | st.sampled_from(["90s", "85", "[]", '["a:*"]', "{}", "true", "nope", "-1", "1e400"])


@PROPERTY
@given(env=st.dictionaries(env_names, env_values, max_size=4))
def test_generated_environment_exits_0_or_2_with_one_clean_line_per_problem(
    env: dict[str, str],
) -> None:
    """Any NODEGC_* variables, known or not, with any values: 0, or 2 with clean lines."""
    problems(*run_cli(["config", "--check"], env))


@PROPERTY
@given(
    broken=st.lists(
        st.sampled_from([(s, k) for s, k in KNOWN if not isinstance(invalid_value(s, k), dict)]),
        unique=True,
        max_size=4,
    ),
    unknown=st.lists(st.text(string.ascii_uppercase, min_size=1, max_size=8), unique=True,
                     max_size=3),
)  # fmt: skip
def test_environment_with_n_problems_says_exactly_n_lines(
    broken: list[tuple[str, str]], unknown: list[str]
) -> None:
    """Wrong-kind values and unknown variable names: one line each, naming it."""
    env = {f"NODEGC_{s}__{k}".upper(): str(invalid_value(s, k)) for s, k in broken}
    env |= {f"NODEGC_ZZ_{name}": "1" for name in unknown}
    lines = problems(*run_cli(["config", "--check"], env))
    assert len(lines) == len(env), (env, lines)
    for section, key in broken:
        assert any(f"{section}.{key}" in line for line in lines), (section, key, lines)
    for name in unknown:
        assert any(f"NODEGC_ZZ_{name}" in line for line in lines), (name, lines)


# -- numbers are numbers -------------------------------------------------------------------------
NUMBER_SETTINGS = [(s, k) for s, k in KNOWN if SETTINGS[s][k].annotation is int]
FLAG_OF = {(section, key): flag for flag, section, key, *_ in cli.FLAG_SETTINGS}
not_numbers = (
    st.booleans()
    | st.text(string.ascii_letters + string.digits + " %.-", max_size=12)
    | st.sampled_from(["85", "1", "0", "85%", "-1"])
)


def whole_number(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@PROPERTY
@given(setting=st.sampled_from(NUMBER_SETTINGS), value=not_numbers)
def test_a_boolean_or_a_string_for_a_number_is_refused_naming_the_setting(
    tmp_path: Path, setting: tuple[str, str], value: bool | str
) -> None:
    """Counts and percentages: `true` or "85" in TOML, a non-number in the environment or in a
    flag, exit 2 with a line naming the setting (or the flag); never read as 1 or as 85."""
    section, key = setting
    lines = problems(*check_config_file(tmp_path, toml_document({section: {key: value}})))
    assert len(lines) == 1 and f"{section}.{key}" in lines[0], (value, lines)
    text = str(value).lower() if isinstance(value, bool) else value
    env_code, env_out, env_err = run_cli(
        ["config", "--check"], {f"NODEGC_{section}__{key}".upper(): text}
    )
    flag = FLAG_OF.get(setting)
    flag_run = run_cli(["config", "--check", f"{flag}={text}"]) if flag else None
    if whole_number(text):  # the environment and flags can only give text: "85" reads as 85
        return
    env_lines = problems(env_code, env_out, env_err)
    assert len(env_lines) == 1 and f"{section}.{key}" in env_lines[0], (text, env_lines)
    if flag_run is not None:
        flag_lines = problems(*flag_run)
        assert len(flag_lines) == 1 and flag in flag_lines[0], (text, flag_lines)


# -- flags --------------------------------------------------------------------------------------
flag_names = st.sampled_from([flag for flag, *_ in cli.FLAG_SETTINGS])
flag_values = (
    st.text(max_size=20)
    | st.integers(-(10**30), 10**30).map(str)
    | st.sampled_from(["0s", "2m", "-1", "101", "99999999999999999h", "unix:///x", "--", "-x"])
)
flag_lists = st.lists(
    st.tuples(flag_names, flag_values).map(list) | st.sampled_from([["--bogus"], ["-z"], ["x"]]),
    max_size=5,
).map(lambda groups: [item for group in groups for item in group])


@PROPERTY
@given(flags=flag_lists)
def test_generated_flags_exit_0_or_2_with_clean_lines(flags: list[str]) -> None:
    """Any mix of the shared flags and junk after `config --check`: 0, or 2 with clean lines."""
    problems(*run_cli(["config", "--check", *flags]))


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (["--image-gc-high-threshold=101"], ["images.high_threshold_percent"]),
        (["--image-gc-high-threshold=50", "--image-gc-low-threshold=60"],
         ["images.low_threshold_percent"]),
        (["--minimum-image-ttl-duration=5", "--minimum-container-ttl-duration=abc"],
         ["images.minimum_age", "containers.minimum_age"]),
        (["--runtime-endpoint=/var/run/docker.sock"], ["runtime.endpoint"]),
        (["--image-gc-high-threshold=many"], ["--image-gc-high-threshold"]),
    ],
)  # fmt: skip
def test_flags_with_known_problems_name_each_on_its_own_line(
    flags: list[str], names: list[str]
) -> None:
    """Flags whose problems are known: one line each, naming the setting or the flag."""
    lines = problems(*run_cli(["config", "--check", *flags]))
    assert len(lines) == len(names), lines
    for name in names:
        assert any(name in line for line in lines), (name, lines)


# -- a few real processes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "env", "file_text"),
    [
        ([], {}, "[images\nhigh = 1"),
        ([], {"NODEGC_IMAGES__HIGH_THRESHOLD": "90"}, None),
        (["--maximum-dead-containers=lots"], {}, None),
        ([], {"NODEGC_RUNTIME__TIMEOUT": "0s"}, '[images]\nminimum_age = "-1m"\n'),
    ],
    ids=["toml-syntax", "env-typo", "flag-type", "env-and-file"],
)
def test_real_process_config_check_exits_2_with_clean_lines(
    tmp_path: Path, args: list[str], env: dict[str, str], file_text: str | None
) -> None:
    """As a user runs it: exit 2, a line per problem, no traceback."""
    if file_text is not None:
        (tmp_path / "c.toml").write_text(file_text)
        args = [*args, "--config", str(tmp_path / "c.toml")]
    proc = nodegc(None, tmp_path / "s", "config", "--check", *args, env=env, timeout=30)
    lines = problems(proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 2
    assert len(lines) == (2 if env and file_text else 1), proc.stderr


@pytest.mark.parametrize(
    "setting",
    ["NODEGC_IMAGES__PRESSURE_CHECK_PERIOD", "NODEGC_IMAGES__GC_PERIOD",
     "NODEGC_CONTAINERS__GC_PERIOD", "NODEGC_RUNTIME__TIMEOUT"],
)  # fmt: skip
def test_run_with_a_period_too_long_to_schedule_exits_2_with_one_line(
    tmp_path: Path, setting: str
) -> None:
    """A valid-looking duration of 11 000 years: refused up front, not a scheduler traceback."""
    env = {setting: "99999999h", "NODEGC_METRICS__ENABLED": "false"}
    proc = nodegc(None, tmp_path / "s", "run", env=env, endpoint="unix:///nonexistent.sock",
                  timeout=30)  # fmt: skip
    lines = problems(proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and "at most" in lines[0], proc.stderr


# -- hostile engine data, through the FakeRuntime -----------------------------------------------
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LONG = "registry.example:5000/" + "a/" * 200 + "b" * 1000 + ":" + "t" * 128


def gc_settings(state: Path, **images: object) -> Settings:
    return load_settings(
        None,
        {
            "state": {"directory": str(state)},
            "images": {"minimum_age": "0s", "high_threshold_percent": 1,
                       "low_threshold_percent": 0, **images},
            "containers": {"max_per_pod_container": 0},
        },
        environ={},
    )  # fmt: skip


def hostile_runtime(root: Path) -> FakeRuntime:
    runtime = FakeRuntime(data_root=str(root))
    odd = [
        Image("sha256:" + "1" * 64, (LONG,), size_bytes=10),
        Image("sha256:" + "2" * 64, ("ünïcødé/ïmage:ţag", "x:\n\tnewline"), size_bytes=10),
        Image("sha256:" + "3" * 64, (), size_bytes=10),  # untagged
        Image("sha256:" + "4" * 64, (), ("repo@sha256:" + "f" * 64,), size_bytes=10),  # digest
        Image("sha256:" + "5" * 64, ("<none>:<none>",), ("<none>@<none>",), size_bytes=10),
        Image("sha256:" + "6" * 64, ("pinned:1",), labels={"nodegc.io/pinned": "true"}),
        Image("sha256:" + "7" * 64, ("used:1",), size_bytes=10),
        Image("weird-id-without-algorithm", ("plain:1",), size_bytes=-5),
    ]
    for image in odd:
        runtime.add_image(image)
    runtime.add_container(
        Container("c" * 64, "", "sha256:" + "7" * 64, ContainerState.RUNNING, NOW, labels={})
    )
    runtime.add_container(
        Container("d" * 64, "\n", "sha256:gone", ContainerState.UNKNOWN, NOW, labels={})
    )
    runtime.add_container(  # a pod uid without a container name, a dangling image reference
        Container("e" * 64, "half", "", ContainerState.EXITED, NOW,
                  labels={"io.kubernetes.pod.uid": "u"})
    )  # fmt: skip
    return runtime


def test_odd_tags_untagged_digest_only_and_missing_labels_are_handled(tmp_path: Path) -> None:
    """Hostile data: the cycle finishes, what must stay stays, every output comes out whole."""
    runtime = hostile_runtime(tmp_path)
    audit = AuditLog(tmp_path / "audit.jsonl", node="n")
    collector = Collector(gc_settings(tmp_path / "s"), runtime, StateDir(tmp_path / "s"),
                          listeners=[audit])  # fmt: skip
    report = collector.cycle()
    assert {"sha256:" + "6" * 64, "sha256:" + "7" * 64} <= set(runtime.images)
    assert "c" * 64 in runtime.containers
    assert "sha256:" + "1" * 64 not in runtime.images  # long tags are no reason to keep
    json.dumps(render.cycle_json(report))
    render.cycle_table(report)
    render.plan_table(collector.report())
    entries, skipped = read_audit(tmp_path / "audit.jsonl")
    assert skipped == 0 and len(entries) == len(report.results)


def test_images_vanishing_between_listing_and_removal_are_skipped_as_gone(
    tmp_path: Path,
) -> None:
    """Someone else removes each image just before nodegc does: skipped, not failed."""
    runtime = FakeRuntime(data_root=str(tmp_path))
    for n in range(20):
        runtime.add_image(Image(f"sha256:{n:064x}", (f"v/{n}:1",), size_bytes=100))
    runtime.before_remove = lambda object_id: runtime.images.pop(object_id, None)
    report = Collector(gc_settings(tmp_path / "s"), runtime, StateDir(tmp_path / "s")).cycle()
    assert len(report.image_results) >= 20
    assert {r.outcome for r in report.image_results} == {Outcome.SKIPPED}
    assert all("already gone" in r.detail for r in report.image_results)
    assert report.failures == []


def test_thousands_of_objects_make_one_cycle_in_seconds(tmp_path: Path) -> None:
    """5000 images and 5000 dead containers: one cycle, everything decided, in a few seconds."""
    runtime = FakeRuntime(data_root=str(tmp_path))
    for n in range(5000):
        runtime.add_image(Image(f"sha256:{n:064x}", (f"bulk/{n % 50}:{n}",), size_bytes=1000))
        runtime.add_container(
            Container(f"{n:064x}", f"c{n}", f"sha256:{(n * 7) % 5000:064x}",
                      ContainerState.EXITED, NOW - timedelta(hours=1),
                      labels={"io.kubernetes.pod.uid": f"p{n % 300}",
                              "io.kubernetes.container.name": "app"})
        )  # fmt: skip
    started = datetime.now(UTC)
    report = Collector(gc_settings(tmp_path / "s"), runtime, StateDir(tmp_path / "s")).cycle()
    elapsed = (datetime.now(UTC) - started).total_seconds()
    assert len(report.plan.containers.decisions) == 5000
    assert runtime.containers == {} and runtime.images == {}
    assert report.failures == []
    assert elapsed < 20, elapsed


tags = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=80)
labels = st.dictionaries(
    st.sampled_from(["io.kubernetes.pod.uid", "io.kubernetes.container.name",
                     "io.kubernetes.pod.name", "com.docker.compose.project",
                     "com.docker.compose.service", "nodegc.io/keep", "nodegc.io/pinned"]) | tags,
    st.sampled_from(["true", "TRUE", "", "app", "p1"]) | tags,
    max_size=4,
)  # fmt: skip


@st.composite
def inventories(draw: st.DrawFn) -> tuple[list[Image], list[Container]]:
    image_ids = [f"sha256:{n:064x}" for n in range(draw(st.integers(0, 12)))]
    images = [
        Image(i, tuple(draw(st.lists(tags, max_size=3))), tuple(draw(st.lists(tags, max_size=2))),
              draw(st.integers(-10, 10**12)), draw(labels))
        for i in image_ids
    ]  # fmt: skip
    containers = [
        Container(
            f"{n:064x}",
            draw(tags),
            draw(st.sampled_from([*image_ids, "sha256:missing", ""])),
            draw(st.sampled_from(list(ContainerState))),
            draw(st.datetimes(min_value=datetime(1970, 1, 2), timezones=st.just(UTC))),
            draw(st.none() | st.datetimes(min_value=datetime(1970, 1, 2),
                                          timezones=st.just(UTC))),
            draw(labels),
        )
        for n in range(draw(st.integers(0, 12)))
    ]  # fmt: skip
    return images, containers


@PROPERTY
@given(inventory=inventories())
def test_generated_hostile_inventories_never_lose_what_must_stay(
    tmp_path: Path, inventory: tuple[list[Image], list[Container]]
) -> None:
    """Any inventory: a cycle finishes; pinned or in-use images and live containers stay."""
    images, containers = inventory
    runtime = FakeRuntime(data_root=str(tmp_path))
    for image in images:
        runtime.add_image(image)
    for container in containers:
        runtime.add_container(container)
    state = tmp_path / f"s{os.urandom(4).hex()}"
    report = Collector(gc_settings(state), runtime, StateDir(state)).cycle()
    used = {c.image_id for c in runtime.containers.values()}
    for image in images:
        pinned = image.labels.get("nodegc.io/pinned", "").lower() == "true"
        if pinned or image.id in used:
            assert image.id in runtime.images, image
    for container in containers:
        if not container.state.is_dead:
            assert container.id in runtime.containers, container
    json.dumps(render.cycle_json(report))
    render.cycle_table(report)


@pytest.mark.parametrize(
    "row",
    [
        {"Id": "sha256:" + "a" * 64},
        {"Id": "sha256:" + "a" * 64, "RepoTags": None, "RepoDigests": None, "Labels": None,
         "Size": None},
        {"Id": "sha256:" + "a" * 64, "RepoTags": ["<none>:<none>"],
         "RepoDigests": ["<none>@<none>"]},
        {"Id": "sha256:" + "a" * 64, "RepoTags": [], "RepoDigests": ["r@sha256:" + "b" * 64]},
    ],
    ids=["bare", "nulls", "none-tags", "digest-only"],
)  # fmt: skip
def test_docker_image_rows_with_missing_or_none_fields_parse(row: dict[str, Any]) -> None:
    """The adapter's reading of /images/json rows: `<none>` and nulls become nothing."""
    image = _image(row)
    assert "<none>:<none>" not in image.tags and "<none>@<none>" not in image.digests
    assert image.size_bytes >= 0 and isinstance(image.labels, dict)


def test_docker_container_row_with_missing_fields_parses() -> None:
    """A /containers/json row with no names, state, image id, labels or creation time."""
    container = _container({"Id": "f" * 64})
    assert container.name == "f" * 12 and container.state is ContainerState.UNKNOWN
    assert container.labels == {} and container.image_id == ""
    assert container.created == datetime.fromtimestamp(0, UTC) and container.finished_at is None


# -- on the real engine -------------------------------------------------------------------------
EVERYTHING = (
    "--image-gc-high-threshold=1", "--image-gc-low-threshold=0",
    "--minimum-image-ttl-duration=0s", "--output=json",
)  # fmt: skip


def test_image_with_50_tags_goes_with_all_of_them(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """50 tags in 50 repositories: removed unforced, every tag with it."""
    image = engine.load(build_image_tar([f"many/r{n}:t{n}" for n in range(50)], 1024))
    proc = nodegc(engine, tmp_path / "s", "once", *EVERYTHING)
    decisions = {d["id"]: d for d in json.loads(proc.stdout)["images"]["decisions"]}
    assert decisions[image]["outcome"] == "removed" and len(decisions[image]["tags"]) == 50
    assert image not in {i["Id"] for i in api.images(all=True)}


def test_image_with_50_tags_in_use_keeps_all_of_them(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """In use by a container: kept, all 50 tags (the container is dead, created: the caps are
    the only rule for it here, or disk pressure would let it and then its image go)."""
    tags_ = sorted(f"many/r{n}:t{n}" for n in range(50))
    image = engine.load(build_image_tar(tags_, 1024))
    api.create_container(
        image, command=["/x"], host_config=api.create_host_config(network_mode="none")
    )
    caps_only = {"NODEGC_CONTAINERS__REMOVE_UNDER_DISK_PRESSURE": "false"}
    nodegc(engine, tmp_path / "s", "once", *EVERYTHING, env=caps_only)
    assert sorted(api.inspect_image(image)["RepoTags"]) == tags_


def test_untagged_and_longest_tag_images_are_listed_and_removed(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """An untagged image and one with a 128-character tag on a long name: both handled."""
    long_tag = "long/" + "n" * 150 + ":" + "t" * 128
    untagged = engine.load(build_image_tar([], 1024))
    long = engine.load(build_image_tar([long_tag], 1024))
    _, report = 0, json.loads(nodegc(engine, tmp_path / "s", "report", "--output=json").stdout)
    listed = {d["id"]: d["tags"] for d in report["images"]["decisions"]}
    assert listed[untagged] == [] and listed[long] == [long_tag]
    proc = nodegc(engine, tmp_path / "s", "once", *EVERYTHING)
    assert "Traceback" not in proc.stderr
    assert not {untagged, long} & {i["Id"] for i in api.images(all=True)}


# -- every number and duration has a range: at and past its edges, from each source -------------
FLAG_OF = {(section, key): flag for flag, section, key, *_ in cli.FLAG_SETTINGS}
RANGED = [(s, k) for s, k in KNOWN if SETTINGS[s][k].annotation in (int, timedelta)]
units = st.sampled_from(["ns", "us", "ms", "s", "m", "h"])
durations = st.tuples(
    st.sampled_from(["", "-"]),
    st.integers(0, 10**13) | st.sampled_from([0, 1, 876_000, 876_001, 20_000_000, 8760 * 10**6]),
    units,
).map(lambda t: f"{t[0]}{t[1]}{t[2]}")
counts = st.integers(-(10**15), 10**15) | st.sampled_from(
    [-2, -1, 0, 1, 64, 65, 100, 101, 10**9, 10**9 + 1]
)


def ranged_value(section: str, key: str) -> st.SearchStrategy[Any]:
    return durations if SETTINGS[section][key].annotation is timedelta else counts


def source_args(
    tmp_path: Path, source: str, section: str, key: str, value: Any
) -> tuple[list[str], dict[str, str]]:
    """`config --check` arguments and environment giving `section.key = value` by `source`."""
    if source == "toml":
        path = tmp_path / "ranged.toml"
        path.write_text(toml_document({section: {key: value}}))
        return ["--config", str(path)], {}
    if source == "env":
        return [], {f"NODEGC_{section}__{key}".upper(): str(value)}
    return [f"{FLAG_OF[(section, key)]}={value}"], {}


def plan_over_fake(settings_: Settings, state: Path) -> None:
    """Accepted settings are usable: a dry-run cycle over a small node completes."""
    state.mkdir(exist_ok=True)
    runtime = FakeRuntime(data_root=str(state))
    now = datetime.now(UTC)
    for n in range(3):
        runtime.add_image(Image(f"sha256:{n:064x}", (f"app/{n}:1",), size_bytes=100))
        runtime.add_container(
            Container(f"{n:064x}", f"c{n}", f"sha256:{n:064x}", ContainerState.EXITED,
                      now - timedelta(hours=n), labels={})
        )  # fmt: skip
    collector = Collector(settings_, runtime, StateDir(state), persist=False)
    render.plan_table(collector.report())


@pytest.mark.parametrize("setting", RANGED, ids=[f"{s}.{k}" for s, k in RANGED])
@settings(PROPERTY, max_examples=30)
@given(data=st.data(), source=st.sampled_from(["toml", "env", "flag"]))
def test_every_number_and_duration_out_of_range_exits_2_naming_it_else_plans(
    tmp_path: Path, data: st.DataObject, setting: tuple[str, str], source: str
) -> None:
    """Each number and duration, from each source, near and past its edges: exit 2 with a line
    naming the setting (or its flag), or accepted — and then a cycle over a node plans with it
    without a traceback (20000000h as an age was accepted, then overflowed `now - age`)."""
    section, key = setting
    if source == "flag" and setting not in FLAG_OF:
        source = "env"
    value = data.draw(ranged_value(section, key))
    args, env = source_args(tmp_path, source, section, key, value)
    code, out, err = run_cli(["config", "--check", *args], env)
    lines = problems(code, out, err)
    if code == 2:
        names = (f"{section}.{key}", FLAG_OF.get(setting, f"{section}.{key}"))
        assert any(n in line for line in lines for n in names), (setting, value, lines)
        return
    with mock.patch.dict(os.environ, env):
        loaded = load_settings(
            Path(args[1]) if source == "toml" else None,
            {section: {key: str(value)}} if source == "flag" else None,
        )
    loaded = loaded.model_copy(update={"state": loaded.state.model_copy(
        update={"directory": str(tmp_path / "s")})})  # fmt: skip
    plan_over_fake(loaded, tmp_path / "s")


@pytest.mark.parametrize(
    "setting",
    ["NODEGC_CONTAINERS__MINIMUM_AGE", "NODEGC_CONTAINERS__MAXIMUM_AGE",
     "NODEGC_IMAGES__MINIMUM_AGE", "NODEGC_IMAGES__MAXIMUM_AGE"],
)  # fmt: skip
def test_once_with_an_age_of_20000000h_exits_2_naming_the_setting(
    tmp_path: Path, setting: str
) -> None:
    """The issue's case as a user ran it (`once`, a real process): exit 2 naming the field and
    its limit, no traceback — refused before any engine is asked."""
    proc = nodegc(None, tmp_path / "s", "once", env={setting: "20000000h"},
                  endpoint="unix:///nonexistent.sock", timeout=30)  # fmt: skip
    lines = problems(proc.returncode, proc.stdout, proc.stderr)
    name = setting.removeprefix("NODEGC_").lower().replace("__", ".")
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert name in lines[0] and "at most 876000h" in lines[0], lines


@settings(PROPERTY, max_examples=60)
@given(value=durations | st.text(max_size=20))
def test_history_since_of_any_size_exits_0_or_2_never_a_traceback(
    tmp_path: Path, value: str
) -> None:
    """`history --since 20000000h` overflowed `now - since` (a traceback): now a range."""
    state = tmp_path / "s"
    state.mkdir(mode=0o700, exist_ok=True)
    code, out, err = run_cli(["history", "--since", value, "--state-dir", str(state)])
    lines = problems(code, out, err)
    if code == 2:
        assert "--since" in lines[0], lines
