"""The model registry: what each detector model is, where it comes from, and installing it safely.

`registry.yaml` is the single description of every model (family, input, preprocessing, classes,
licence, source, SHA-256). Weights are installed, never committed: `install_model` copies a local
file or downloads a URL into `<models_dir>/<name>.onnx` through a temporary file that is hashed
while it is written, fsynced and renamed into place only when the SHA-256 matches, so a bad or
truncated download never becomes an installed model. Loading re-checks cheaply: a sidecar written
at install holds the size and mtime the file had when it was verified; if either changed, the file
is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.durable import fsync_dir

REGISTRY_PATH = Path(__file__).with_name("registry.yaml")
INSTALL_HINT = "diaolou-agent models install {name} --from PATH_OR_URL"
CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 60.0

Family = Literal["yolox", "yolov8", "fastestdet", "hog"]
ResizeMode = Literal["letterbox_top_left", "letterbox_center", "stretch"]


class ModelError(Exception):
    """A model cannot be found, installed or verified; the message says what to do."""


class _Strict(BaseModel):
    # A typo in registry.yaml must fail loudly rather than silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInput(_Strict):
    name: str = Field(min_length=1)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class ModelOutput(_Strict):
    # Checked against the ONNX file at load: a wrong file fails before the first frame.
    shape: tuple[int, ...]


class Preprocess(_Strict):
    resize: ResizeMode
    pad_value: int = Field(ge=0, le=255)
    colour: Literal["bgr", "rgb"]
    scale: float = Field(gt=0)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @model_validator(mode="after")
    def _std_nonzero(self) -> Preprocess:
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self


class ModelEntry(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    family: Family
    description: str
    licence: str
    licence_url: str | None = None
    source_url: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size_bytes: int | None = Field(default=None, gt=0)
    builtin: bool = False
    default: bool = False
    recommended: bool = False
    input: ModelInput | None = None
    output: ModelOutput | None = None
    preprocess: Preprocess | None = None
    strides: tuple[int, ...] | None = None
    classes: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ModelEntry:
        if self.builtin:
            if self.sha256 or self.input or self.preprocess:
                raise ValueError(f"{self.name}: a builtin model has no file, sha256, input or preprocess")
        else:
            missing = [k for k in ("source_url", "sha256", "input", "output", "preprocess") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{self.name}: an installable model needs {', '.join(missing)}")
            if self.family == "hog":
                raise ValueError(f"{self.name}: family hog is only available builtin")
        if self.family == "yolox" and not self.strides:
            raise ValueError(f"{self.name}: family yolox needs strides")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"{self.name}: duplicate class names")
        return self


class Registry(_Strict):
    models: tuple[ModelEntry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {', '.join(dupes)}")
        defaults = [m.name for m in self.models if m.default]
        if len(defaults) != 1:
            raise ValueError(f"exactly one model must be the default, found {defaults or 'none'}")
        if not self.models_by_name()[defaults[0]].builtin:
            # The default must work on a fresh box with no network.
            raise ValueError(f"the default model {defaults[0]} must be builtin (no download)")
        return self

    def models_by_name(self) -> dict[str, ModelEntry]:
        return {m.name: m for m in self.models}

    def get(self, name: str) -> ModelEntry:
        entry = self.models_by_name().get(name)
        if entry is None:
            known = ", ".join(m.name for m in self.models)
            raise ModelError(f"unknown model {name!r}; known models: {known}")
        return entry

    @property
    def default(self) -> ModelEntry:
        return next(m for m in self.models if m.default)


def parse_registry(text: str, source: str = "registry") -> Registry:
    try:
        data = yaml.safe_load(text)
        return Registry.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ModelError(f"invalid model registry {source}: {exc}") from exc


@lru_cache(maxsize=4)
def _load_cached(path: str) -> Registry:
    return parse_registry(Path(path).read_text(encoding="utf-8"), path)


def load_registry(path: Path | None = None) -> Registry:
    """The registry, parsed and validated once per process (it is read-only at run time)."""
    return _load_cached(str(path or REGISTRY_PATH))


def get_entry(name: str) -> ModelEntry:
    return load_registry().get(name)


@dataclass(frozen=True)
class ModelStatus:
    name: str
    family: str
    installed: bool
    path: Path | None
    recommended: bool
    builtin: bool
    default: bool
    licence: str


def installed_path(name: str, models_dir: Path) -> Path:
    return Path(models_dir) / f"{name}.onnx"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def list_models(models_dir: Path) -> list[ModelStatus]:
    """Every registry model and whether it is usable now (present with a matching hash, or builtin)."""
    out: list[ModelStatus] = []
    for entry in load_registry().models:
        path: Path | None = None
        if entry.builtin:
            installed = True
        else:
            candidate = installed_path(entry.name, models_dir)
            installed = _verify(entry, candidate, raise_errors=False)
            path = candidate if installed else None
        out.append(
            ModelStatus(
                name=entry.name,
                family=entry.family,
                installed=installed,
                path=path,
                recommended=entry.recommended,
                builtin=entry.builtin,
                default=entry.default,
                licence=entry.licence,
            )
        )
    return out


def model_path(name: str, models_dir: Path) -> Path:
    """The installed, verified file of `name`, or a ModelError saying how to install it."""
    entry = get_entry(name)
    if entry.builtin:
        raise ModelError(f"{name} is built in and has no model file")
    path = installed_path(name, models_dir)
    if not path.is_file():
        hint = INSTALL_HINT.format(name=name)
        raise ModelError(f"model {name} is not installed in {models_dir}; install it with: {hint}")
    _verify(entry, path, raise_errors=True)
    return path


def install_model(name: str, models_dir: Path, source: str | None = None) -> Path:
    """Copy (local path) or download (http/https URL; default: the registry's URL) the model file into
    `<models_dir>/<name>.onnx`. The SHA-256 is checked before the file takes its final name: a
    mismatch raises ModelError and installs nothing (a previously installed good file stays)."""
    entry = get_entry(name)
    if entry.builtin:
        raise ModelError(f"{name} is built in; there is nothing to install")
    assert entry.sha256 is not None  # guaranteed by ModelEntry validation for non-builtin entries
    src = source or entry.source_url
    if not src:
        raise ModelError(f"{name} has no source URL in the registry; give one with --from PATH_OR_URL")
    models_dir = Path(models_dir)
    final = installed_path(name, models_dir)
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=models_dir)
    except OSError as exc:
        raise ModelError(f"cannot write to the models directory {models_dir}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _open_source(src) as stream:
            try:
                digest, size = _copy_hashing(stream, out, limit=entry.size_bytes)
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:  # a dropped download or a full disk: say which model and source
                raise ModelError(f"cannot install {name} from {src}: {exc}") from exc
        if digest != entry.sha256:
            raise ModelError(
                f"SHA-256 mismatch for {name} from {src}: expected {entry.sha256}, got {digest} "
                f"({size} bytes); nothing was installed"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
        fsync_dir(models_dir)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Only an optimisation: without the sidecar the next load re-hashes the (good) file.
    with contextlib.suppress(OSError):
        _write_sidecar(final, digest)
    return final


@contextlib.contextmanager
def _open_source(src: str) -> Iterator[IO[bytes]]:
    scheme = urllib.parse.urlsplit(src).scheme.lower()
    if scheme in ("http", "https"):
        try:
            # The URL comes from the registry or the operator; only http(s) is accepted here.
            resp = urllib.request.urlopen(src, timeout=DOWNLOAD_TIMEOUT_S)
        except OSError as exc:  # URLError and HTTPError are OSErrors
            raise ModelError(f"cannot download {src}: {exc}") from exc
        with resp:
            yield resp
        return
    if len(scheme) > 1:  # a one-letter "scheme" is a Windows drive, anything else is unsupported
        raise ModelError(f"unsupported source {src!r}: give a local path or an http(s) URL")
    path = Path(src).expanduser()
    if not path.is_file():
        raise ModelError(f"model source {path} does not exist or is not a file")
    with path.open("rb") as f:
        yield f


def _copy_hashing(stream: IO[bytes], out: IO[bytes], limit: int | None) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if limit is not None and size > limit:
            # Stop early rather than fill the disk of a small box with a wrong (or hostile) download.
            raise ModelError(f"source is larger than the expected {limit} bytes; not the registered model")
        h.update(chunk)
        out.write(chunk)
    return h.hexdigest(), size


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write_sidecar(path: Path, digest: str) -> None:
    st = path.stat()
    record = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    side = _sidecar(path)
    tmp = side.with_name(side.name + ".part")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, side)


def _sidecar_matches(path: Path, expected: str) -> bool:
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        st = path.stat()
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(record, dict)
        and record.get("sha256") == expected
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    )


def _verify(entry: ModelEntry, path: Path, raise_errors: bool) -> bool:
    """True when `path` holds the registered file. Cheap when the install sidecar still matches;
    otherwise the file is hashed again (and the sidecar refreshed if it is good)."""
    if not path.is_file():
        return False
    assert entry.sha256 is not None
    if _sidecar_matches(path, entry.sha256):
        return True
    digest = sha256_file(path)
    if digest == entry.sha256:
        with contextlib.suppress(OSError):  # a read-only models dir still loads, it just re-hashes next time
            _write_sidecar(path, digest)
        return True
    if raise_errors:
        raise ModelError(
            f"installed model {path} is corrupt or altered: SHA-256 expected {entry.sha256}, got {digest}; "
            f"reinstall with: {INSTALL_HINT.format(name=entry.name)}"
        )
    return False


__all__ = [
    "INSTALL_HINT",
    "REGISTRY_PATH",
    "ModelEntry",
    "ModelError",
    "ModelInput",
    "ModelOutput",
    "ModelStatus",
    "Preprocess",
    "Registry",
    "get_entry",
    "install_model",
    "installed_path",
    "list_models",
    "load_registry",
    "model_path",
    "parse_registry",
    "sha256_file",
]
