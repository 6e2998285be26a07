"""Runtime checks: does what a valid config names exist and work on this machine?

The schema judges values (a malformed URL, an empty source); these judge the box, so they run
where the config will be used: `diaolou-agent run` before it starts, `config check` after it
validates (run it as the service's user: root can write where the service cannot). Commands
that only read recordings (clip, status, hold) skip them: a camera's video file gone missing
must not stop anyone from cutting a clip.

Every problem is reported, one line each, as `FILE: KEY: what is wrong; what to do`, and
raised as one ConfigError (exit status 2), never as a traceback from deep inside SQLite.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from edge_agent.capture.kinds import classify
from edge_agent.config.loader import ConfigError
from edge_agent.config.schema import AgentConfig

# Kernel and device pseudo-filesystems: writable-looking for root, but they hold no recordings.
PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))
EXAMPLE_ROOT = "/var/lib/diaolou/recordings"


def check_runtime(config: AgentConfig, source: str) -> None:
    """Storage root, camera video files and password files; ConfigError listing every problem."""
    problems = [("storage.root", p) for p in [storage_root_problem(config.storage.root)] if p]
    for name, camera in config.cameras.items():
        for key in ("source", "detect_source"):
            value = getattr(camera, key)
            if value is not None and classify(value) == "file":
                problem = _video_file_problem(Path(value))
                if problem:
                    problems.append((f"cameras.{name}.{key}", problem))
        if camera.password_file is not None and not os.access(camera.password_file, os.R_OK):
            problems.append(
                (
                    f"cameras.{name}.password_file",
                    f"cannot read {camera.password_file} as user {_user()}; check that it exists and that the "
                    "service's user may read it",
                )
            )
    _raise(problems, source)


def check_storage(config: AgentConfig, source: str) -> None:
    """Only the storage root (test-alarm: it writes the outbox there, it records nothing)."""
    problem = storage_root_problem(config.storage.root)
    _raise([("storage.root", problem)] if problem else [], source)


def storage_root_problem(root: Path) -> str | None:
    """What stops the agent from recording under `root`, or None. Creates nothing: a root that does
    not exist yet is fine when its nearest existing parent is a writable directory."""
    try:
        return _storage_root_problem(root)
    except OSError as exc:  # e.g. a parent directory this user may not enter
        return f"cannot check {root}: {exc.strerror or exc}; check the path and its parents' permissions"


def _storage_root_problem(root: Path) -> str | None:
    resolved = root.resolve()  # symlinks followed: a link into /proc is inside /proc
    for pseudo in PSEUDO_FILESYSTEMS:
        if resolved.is_relative_to(pseudo):
            return (
                f"{root} is inside {pseudo}, a kernel pseudo-filesystem that cannot hold recordings; "
                f"point it at a directory on the recording disk (e.g. {EXAMPLE_ROOT})"
            )
    if resolved.exists() and not resolved.is_dir():
        return f"{root} is a file, not a directory; point storage.root at a directory (it is created if missing)"
    existing = resolved
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{root} cannot be created: {existing} is a file, not a directory; point storage.root elsewhere"
    if not os.access(existing, os.W_OK | os.X_OK):
        why = _why_not_writable(existing)
        if existing == resolved:
            return (
                f"{root} is not writable ({why}); make it writable for the service's user or point "
                "storage.root elsewhere"
            )
        return (
            f"{root} does not exist and cannot be created: {existing} is not writable ({why}); create it "
            f"(mkdir -p {root}) for the service's user, or point storage.root elsewhere"
        )
    if existing == resolved:
        for db in sorted(resolved.glob("*.db*")):
            if not os.access(db, os.R_OK | os.W_OK):
                return (
                    f"{db} is not writable ({_why_not_writable(db)}); give the service's user write access "
                    f"(chown -R USER {root})"
                )
    return None


def _video_file_problem(path: Path) -> str | None:
    hint = (
        "give an existing video file (a relative path is taken from the config file's directory), "
        "an rtsp:// URL or /dev/videoN"
    )
    if not path.exists():
        return f"no such file {path}; {hint}"
    if not path.is_file():
        return f"{path} is not a regular file; {hint}"
    if not os.access(path, os.R_OK):
        return f"cannot read {path} as user {_user()}; let the service's user read it"
    return None


def _why_not_writable(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only filesystem"
    except OSError as exc:
        return exc.strerror or str(exc)
    return f"permission denied for user {_user()}"


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _raise(problems: list[tuple[str, str]], source: str) -> None:
    if problems:
        raise ConfigError("\n".join(f"{source}: {key}: {problem}" for key, problem in problems))
