"""What an upload destination URL means: the Hugging Face Hub or an fsspec file system.

    hf://datasets/USER/NAME     a dataset repository on the Hub (huggingface_hub)
    s3://BUCKET[/PREFIX]        S3 or any S3-compatible store (s3fs; AWS_ENDPOINT_URL for others)
    /mnt/nas/pick, file:///...  a folder, e.g. a mounted NAS share
    gs://..., sftp://..., ...   any other fsspec file system whose package is installed

Parsing never touches the network: a wrong URL is refused before anything is recorded.
Credentials never go in the URL; they come from where each library looks for them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

HUB_PREFIX = "hf://datasets/"
INSTALL_UPLOAD = "pip install 'operating_platform[upload]'"
HUB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# fsspec protocols that only read, or keep files nowhere another process can see them.
NOT_STORAGE = {
    "http", "https", "github", "gist", "git", "zip", "tar", "libarchive", "data", "reference",
    "memory", "cached", "blockcache", "filecache", "simplecache", "dir", "dvc", "generic",
    "async_wrapper", "asyncwrapper", "jupyter", "jlab", "pyscript", "wandb",
}  # fmt: skip
LOCAL = {"file", "local"}


class DestinationError(ValueError):
    """A destination URL that cannot be used; `shown` is the URL safe to print, `reason` why."""

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__(f"{shown}: {reason}")
        self.shown = shown
        self.reason = reason


@dataclass(frozen=True)
class Destination:
    """A parsed destination: `kind` is "hub" (with `repo_id`) or "fsspec" (with `protocol`
    and `path`, the file system path of the dataset's folder there)."""

    url: str
    kind: str
    protocol: str
    path: str = ""
    repo_id: str = ""

    @property
    def is_local(self) -> bool:
        return self.kind == "fsspec" and self.protocol in LOCAL

    @property
    def key(self) -> str:
        """A file name for this destination's local records (readable, and unique by a hash)."""
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.url.split("://", 1)[-1]).strip("_.")[:60]
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        return f"{readable}-{digest}"


def parse_destination(url: str, root: Path | None = None) -> Destination:
    """Parse `url`; raise `DestinationError` saying what is wrong and what to write instead.

    A folder given by a relative path is made absolute here, as the caller sees it. `root`,
    the dataset being uploaded, is refused as its own destination (or a folder inside it).
    """
    text = url.strip()
    if not text:
        raise DestinationError("''", "empty; give hf://datasets/USER/NAME, s3://BUCKET/PREFIX or a folder")
    parts = urlsplit(text) if "://" in text else None
    if parts is None:
        return _local(str(Path(text).expanduser().absolute()), root, text)
    scheme = parts.scheme.lower()
    shown = _safe(text)
    if parts.username or parts.password:
        raise DestinationError(
            shown, "credentials do not go in the URL; they are read from the environment, as the library does"
        )
    if parts.query or parts.fragment:
        raise DestinationError(shown, "a destination URL takes no '?' or '#' part")
    if scheme == "hf":
        return _hub(text, shown)
    if scheme in LOCAL:
        if parts.netloc not in ("", "localhost"):
            raise DestinationError(
                shown, "a file:// URL names a folder on this machine: file:///path/to/folder"
            )
        return _local(parts.path, root, shown)
    if scheme in NOT_STORAGE:
        raise DestinationError(shown, f"{scheme}:// cannot be written to; use a storage URL such as s3://")
    path = (parts.netloc + parts.path).rstrip("/")
    if not parts.netloc:
        raise DestinationError(shown, f"names no bucket or host, e.g. {scheme}://BUCKET/PREFIX")
    return Destination(url=f"{scheme}://{path}", kind="fsspec", protocol=scheme, path=path)


def check_dependencies(dest: Destination) -> None:
    """Raise `DestinationError` naming the pip command if the library `dest` needs is missing."""
    if dest.kind == "hub":
        if importlib.util.find_spec("huggingface_hub") is None:
            raise DestinationError(dest.url, f"uploading to the Hub needs huggingface_hub: {INSTALL_UPLOAD}")
        return
    if importlib.util.find_spec("fsspec") is None:
        raise DestinationError(dest.url, f"uploading there needs fsspec: {INSTALL_UPLOAD}")
    if dest.protocol in ("s3", "s3a"):
        if importlib.util.find_spec("s3fs") is None:
            raise DestinationError(dest.url, f"uploading to S3 needs s3fs: {INSTALL_UPLOAD}")
        return
    if dest.is_local:
        return
    from fsspec.registry import get_filesystem_class, known_implementations, registry

    if dest.protocol not in known_implementations and dest.protocol not in registry:
        raise DestinationError(
            dest.url,
            f"unknown URL scheme '{dest.protocol}://'; use hf://datasets/USER/NAME, s3://BUCKET/PREFIX, "
            "a folder, or a URL of another fsspec file system",
        )
    try:
        get_filesystem_class(dest.protocol)
    except ImportError:
        package = known_implementations.get(dest.protocol, {}).get("class", "").split(".")[0]
        need = f"pip install {package}" if package else "install its fsspec package"
        raise DestinationError(
            dest.url, f"'{dest.protocol}://' needs {package or 'a package'}: {need}"
        ) from None


def _hub(text: str, shown: str) -> Destination:
    if not text.startswith(HUB_PREFIX):
        raise DestinationError(shown, "a Hub destination is a dataset repository: hf://datasets/USER/NAME")
    repo_id = text[len(HUB_PREFIX) :].rstrip("/")
    if not HUB_NAME_RE.match(repo_id) or ".." in repo_id.split("/"):
        raise DestinationError(
            shown, "must be hf://datasets/USER/NAME (letters, digits, '_', '-', '.'; nothing after NAME)"
        )
    return Destination(url=f"{HUB_PREFIX}{repo_id}", kind="hub", protocol="hf", repo_id=repo_id)


def _local(path: str, root: Path | None, shown: str) -> Destination:
    folder = Path(path)
    if not folder.is_absolute():
        raise DestinationError(shown, "a file:// URL needs an absolute path: file:///path/to/folder")
    resolved = folder.resolve()
    if resolved.exists() and not resolved.is_dir():
        raise DestinationError(shown, "is a file, not a folder")
    if root is not None:
        dataset = Path(root).expanduser().resolve()
        if resolved == dataset or dataset in resolved.parents:
            raise DestinationError(shown, "is the dataset's own folder; upload to a folder outside it")
    return Destination(
        url=f"file://{resolved.as_posix()}", kind="fsspec", protocol="file", path=str(resolved)
    )


def _safe(text: str) -> str:
    """`text` without a user name or password, so that no message ever shows a credential."""
    parts = urlsplit(text)
    if parts.username is None and parts.password is None:
        return text
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"***@{host}").geturl()
