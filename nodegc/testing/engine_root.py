"""Container engines newer than the host's, run from a Debian root (the engine test matrix).

Debian 12 ships dockerd 20.10, containerd 1.6 and Podman 4.3; nodes run Docker 28, containerd 2.x
and Podman 5. `scripts/engine-root SUITE` builds a Debian root of a later release with those
engines (`debootstrap --variant=minbase`, cached under `$NGC_ENGINE_CACHE`, by default
`~/.cache/nodegc/engines/SUITE`, outside the clone so that later runs on the machine reuse it).
`EngineRoot.wrap(argv, binds=[temp_dir])` turns a command line into one that runs inside the root,
in a private mount namespace of its own:

    mount --make-rprivate /; mount --bind ROOT ROOT           (so that `docker load` can remount)
    mount --rbind /proc, /sys, /dev into ROOT; a tmpfs on ROOT/run and ROOT/tmp (private: no
    shim socket or lock is shared with another engine, nothing is left in the cached root)
    mount --rbind TEMP ROOT/TEMP for each bind                (engine paths are host paths)
    mount --make-rshared ROOT/TEMP  (peers in this namespace only: dockerd, finding its data root
                                 on a private mount, binds it onto itself without its submounts,
                                 which hid a filesystem mounted at DATA_ROOT/containerd)
    cd ROOT; pivot_root . .; umount -l .; exec ARGV   (not chroot: the namespace's copies of the
                                 host's other mounts go, so an engine never holds another
                                 harness's loop filesystem mounted after that one unmounted it)

No fork happens (`unshare` and `sh` exec), so the pid the caller gets is the engine's own and the
harness's pidfile/command-line checks work unchanged; the mounts vanish with the last process of
the namespace, so teardown is: kill our processes (by pid, pidfile and temp dir), unmount on the
host what the harness mounted there, detach the loops. Loop filesystems must be mounted under the
temp dir BEFORE the engine starts (the namespace takes a copy of the mounts at start).

`NGC_TEST_ENGINE_ROOT=SUITE` makes the suite's default fixtures (`engine`, `ctrd`, Podman's
`engine`) run their engines from that root (e.g. `trixie`: Debian 13's docker.io 26.1,
containerd 1.7, Podman 5.4) instead of the host's. (Not `NODEGC_*`: nodegc reads those as
settings, and refuses the ones it does not know.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_SUITE",
    "ENV_ROOT",
    "ENV_STORE",
    "EngineRoot",
    "EngineRootError",
    "cache_dir",
    "engine_root",
    "root_from_env",
]

DEFAULT_SUITE = "forky"
ENV_ROOT = "NGC_TEST_ENGINE_ROOT"
# The image store a root's dockerd runs in (overlay2 or containerd): the tests' and the benchmarks'.
ENV_STORE = "NGC_TEST_DOCKER_STORE"
ENV_CACHE = "NGC_ENGINE_CACHE"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_TIMEOUT = 3600.0
# Runs as `sh -c SCRIPT sh ROOT BIND... -- ARGV...` inside `unshare --mount`.
_ENTER = r"""set -e
R=$1; shift
mount --make-rprivate /
mount --bind "$R" "$R"
mount --rbind /proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=0755 nodegc-run "$R/run"
mount -t tmpfs -o mode=1777 nodegc-tmp "$R/tmp"
while [ "$1" != "--" ]; do
  mkdir -p "$R$1"
  mount --rbind "$1" "$R$1"
  mount --make-rshared "$R$1"
  shift
done
shift
cd "$R"
pivot_root . .
umount -l .
cd /
exec "$@"
"""


class EngineRootError(RuntimeError):
    """The engine root could not be found or built."""


@dataclass(frozen=True)
class EngineRoot:
    """A Debian root holding container engines (`scripts/engine-root` made it)."""

    suite: str
    path: Path
    _versions: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def versions(self) -> dict[str, str]:
        """Debian package -> version of the engines in the root (`dpkg-query -W` at build)."""
        if not self._versions:
            try:
                text = (self.path / ".versions").read_text()
            except OSError:
                text = ""
            for line in text.splitlines():
                name, _, version = line.partition("\t")
                self._versions[name.strip()] = version.strip()
        return self._versions

    def version(self, package: str) -> tuple[int, ...]:
        """The upstream version of `package` as numbers (`2.1.9+ds1-5` -> (2, 1, 9)); () if
        unknown."""
        match = re.match(r"(?:\d+:)?(\d+(?:\.\d+)*)", self.versions.get(package, ""))
        return tuple(int(n) for n in match.group(1).split(".")) if match else ()

    def has(self, program: str) -> bool:
        """True when `program` (a path inside the root, or a name on its PATH) is there."""
        if program.startswith("/"):
            return os.access(self.path / program.lstrip("/"), os.X_OK)
        dirs = ROOT_PATH.split(":")
        return any(os.access(self.path / d.lstrip("/") / program, os.X_OK) for d in dirs)

    def wrap(self, argv: Sequence[str], *, binds: Sequence[os.PathLike[str] | str]) -> list[str]:
        """`argv` run inside the root, in a private mount namespace, with each of `binds` (host
        directories) mounted at the same path inside."""
        unshare = shutil.which("unshare", path=f"{os.environ.get('PATH', '')}:{ROOT_PATH}")
        paths = [str(Path(b).resolve()) for b in binds]
        if any(not p.startswith("/") or p == "/" for p in paths):
            raise ValueError(f"cannot bind {paths} into an engine root")
        return [unshare or "unshare", "--mount", "--propagation", "private", "sh", "-c", _ENTER,
                "sh", str(self.path), *paths, "--", *argv]  # fmt: skip

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for a command in the root: the host's, minus engine selectors, with
        the root's PATH."""
        prefixes = ("DOCKER_", "CONTAINERD_", "CONTAINER_HOST", "CONTAINERS_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env["PATH"] = ROOT_PATH
        env.update(extra or {})
        return env

    def run(
        self,
        argv: Sequence[str],
        *,
        binds: Sequence[os.PathLike[str] | str],
        env: Mapping[str, str] | None = None,
        cwd: os.PathLike[str] | str | None = None,
        timeout: float | None = 300.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the root (see `wrap`) and wait; raise EngineRootError with its
        output when it fails and `check` is set. `cwd` is a path valid inside the root too."""
        command = list(argv)
        if cwd is not None:
            command = ["sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *command]
        done = subprocess.run(
            self.wrap(command, binds=binds), capture_output=True, text=True,
            env=self.env(env), timeout=timeout, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise EngineRootError(
                f"{' '.join(argv)} (in {self.suite} root) failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-4000:]}"
            )
        return done


def cache_dir() -> Path:
    """Where built roots are kept: `$NGC_ENGINE_CACHE` or `~/.cache/nodegc/engines`."""
    configured = os.environ.get(ENV_CACHE)
    if configured:
        return Path(configured)
    return Path(os.environ.get("HOME") or "/root") / ".cache" / "nodegc" / "engines"


def _script() -> Path:
    return Path(__file__).resolve().parents[2] / "scripts" / "engine-root"


def engine_root(suite: str = DEFAULT_SUITE, *, build: bool = True) -> EngineRoot:
    """The root of Debian `suite`, built first (minutes, needs root and network to the host's
    mirror) unless it is cached or `build` is False."""
    path = cache_dir() / suite
    if (path / ".complete").exists():
        return EngineRoot(suite, path)
    script = _script()
    if not build or not script.exists():
        raise EngineRootError(f"no engine root at {path} (run scripts/engine-root {suite})")
    done = subprocess.run(
        [str(script), suite], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        env={**os.environ, ENV_CACHE: str(cache_dir())},
    )  # fmt: skip
    if done.returncode != 0 or not (path / ".complete").exists():
        raise EngineRootError(f"scripts/engine-root {suite} failed:\n{done.stderr[-4000:]}")
    return EngineRoot(suite, path)


def root_from_env() -> EngineRoot | None:
    """The root `$NGC_TEST_ENGINE_ROOT` names (built if needed), None when it is unset."""
    suite = os.environ.get(ENV_ROOT, "").strip()
    return engine_root(suite) if suite else None
