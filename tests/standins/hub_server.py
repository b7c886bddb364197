"""A stand-in for the Hugging Face Hub: the part of its HTTP API huggingface_hub uses to upload a
dataset and read it back, served over real HTTP on 127.0.0.1 (point HF_ENDPOINT at `url`).

It keeps dataset repositories in memory, with their whole history: every commit is a full tree
(path -> blob), so a test can check that each commit on its own is a complete dataset. Large
files (.parquet, .mp4) go through Git LFS's basic transfer, as on the Hub: a batch request,
then a PUT of the content, whose sha256 is checked, then a commit that refers to it. The Xet
protocol is not spoken: clients run with HF_HUB_DISABLE_XET=1.

Routes (DATASET is NAMESPACE/NAME, REV a branch, tag or commit id, URL-quoted):
    POST   /api/repos/create                          create a repository (409 if it exists)
    POST   /api/validate-yaml                         check a card's front matter
    POST   /api/datasets/DATASET/preupload/REV        "lfs" or "regular" for each file
    POST   /datasets/DATASET.git/info/lfs/objects/batch   where to PUT each LFS object
    PUT    /lfs/OID                                   an LFS object's content
    POST   /api/datasets/DATASET/commit/REV           a commit (application/x-ndjson)
    GET    /api/datasets/DATASET/tree/REV[/PATH]      the files (recursive with ?recursive=True)
    GET    /api/datasets/DATASET/refs                 branches and tags
    GET    /api/datasets/DATASET/revision/REV         repository info at a revision
    POST   /api/datasets/DATASET/tag/REV              create a tag ({"tag": NAME})
    DELETE /api/datasets/DATASET/tag/TAG              delete a tag
    HEAD/GET /datasets/DATASET/resolve/REV/PATH       download a file
Writes need an `Authorization: Bearer ...` header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".parquet", ".mp4")
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.mp4 filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    tree: dict[str, Blob]
    parent: str | None


@dataclass
class Repo:
    repo_id: str
    commits: list[Commit] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit | None:
        oid = self.branches.get(rev) or self.tags.get(rev) or rev
        return next((c for c in self.commits if c.oid == oid), None)

    def head(self) -> Commit:
        commit = self.resolve("main")
        assert commit is not None
        return commit


class HubState:
    """Everything the stand-in holds; tests read it directly."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}  # sha256 -> content
        self.lfs_puts = 0
        self.lock = threading.Lock()

    def commit(self, repo: Repo, message: str, tree: dict[str, Blob]) -> Commit:
        parent = repo.branches.get("main")
        digest = hashlib.sha1(f"{parent}\n{message}\n{len(repo.commits)}".encode())
        for path in sorted(tree):
            digest.update(f"{path}\0{tree[path].sha256}\n".encode())
        commit = Commit(digest.hexdigest(), message, tree, parent)
        repo.commits.append(commit)
        repo.branches["main"] = commit.oid
        return commit


class _Error(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _Handler(BaseHTTPRequestHandler):
    server: HubServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # the tests' output stays readable
        pass

    # -- plumbing -----------------------------------------------------------------------------

    def _body(self) -> bytes:
        return self._data

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        parts = []
        while True:  # a file object is sent in chunks, each after its size in hex
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        data = (
            b""
            if payload is None
            else payload
            if isinstance(payload, bytes)
            else json.dumps(payload).encode()
        )
        self.send_response(status)
        content_type = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        # Read whole, also when refused: the connection is kept alive for the next request.
        self._data = self._read_body()
        try:
            # LFS uploads go to a presigned address, as on the Hub: its signature is the credential.
            presigned = path.startswith("/lfs/")
            authorized = self.headers.get("Authorization", "").startswith("Bearer ")
            if self.command in ("POST", "PUT", "DELETE") and not presigned and not authorized:
                raise _Error(401, "Invalid credentials in Authorization header")
            with self.server.state.lock:
                self._route(path, query)
        except _Error as exc:
            headers = {"X-Error-Code": exc.code} if exc.code else {}
            headers["X-Error-Message"] = exc.message
            self._send(exc.status, {"error": exc.message}, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    def _repo(self, repo_id: str) -> Repo:
        repo = self.server.state.repos.get(repo_id)
        if repo is None:
            raise _Error(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(unquote(rev))
        if commit is None:
            raise _Error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    # -- routes -------------------------------------------------------------------------------

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        state = self.server.state
        m = re.fullmatch(
            r"/api/datasets/([^/]+/[^/]+)/(preupload|commit|tree|revision|tag)/([^/]+)(/.*)?", path
        )
        if path == "/api/repos/create" and self.command == "POST":
            return self._create_repo(json.loads(self._body()))
        if path == "/api/validate-yaml" and self.command == "POST":
            return self._validate_yaml(json.loads(self._body()))
        if m is not None:
            repo, action, rev, rest = self._repo(m[1]), m[2], m[3], unquote((m[4] or "").lstrip("/"))
            if action == "preupload" and self.command == "POST":
                return self._preupload(repo, rev, json.loads(self._body()))
            if action == "commit" and self.command == "POST":
                return self._commit(repo, rev, self._body())
            if action == "tree" and self.command == "GET":
                return self._tree(repo, rev, rest, query.get("recursive", ["False"])[0].lower() == "true")
            if action == "revision" and self.command == "GET":
                return self._info(repo, rev)
            if action == "tag" and self.command == "POST":
                return self._create_tag(repo, rev, json.loads(self._body()))
            if action == "tag" and self.command == "DELETE":
                if repo.tags.pop(unquote(rev), None) is None:
                    raise _Error(404, f"Tag {rev} not found", "RevisionNotFound")
                return self._send(200, {})
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/refs", path)
        if m is not None and self.command == "GET":
            return self._refs(self._repo(m[1]))
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if m is not None and self.command == "POST":
            self._repo(m[1])
            return self._lfs_batch(json.loads(self._body()))
        m = re.fullmatch(r"/lfs/([0-9a-f]{64})", path)
        if m is not None and self.command == "PUT":
            if query.get("signature") != [self.server.sign(m[1])]:
                raise _Error(403, "the upload address is not signed")
            data = self._body()
            if hashlib.sha256(data).hexdigest() != m[1]:
                raise _Error(400, "the content does not match its oid")
            state.lfs[m[1]] = data
            state.lfs_puts += 1
            return self._send(200, {})
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m is not None and self.command in ("GET", "HEAD"):
            return self._resolve(self._repo(m[1]), m[2], unquote(m[3]))
        raise _Error(404, f"no route for {self.command} {path}")

    def _create_repo(self, payload: dict[str, Any]) -> None:
        if payload.get("type") != "dataset":
            raise _Error(400, "this stand-in holds dataset repositories only")
        repo_id = f"{payload['organization']}/{payload['name']}"
        state = self.server.state
        url = f"{self.server.url}/datasets/{repo_id}"
        if repo_id in state.repos:  # the Hub answers with the repository's address all the same
            return self._send(409, {"error": "You already created this dataset repo", "url": url})
        repo = Repo(repo_id)
        state.repos[repo_id] = repo
        state.commit(repo, "initial commit", {".gitattributes": Blob(GITATTRIBUTES, lfs=False)})
        self._send(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, payload: dict[str, Any]) -> None:
        content = payload.get("content", "")
        m = re.match(r"^---\n(.*?)\n---\n", content, flags=re.S)
        try:
            meta = yaml.safe_load(m[1]) if m else {}
        except yaml.YAMLError as exc:
            raise _Error(400, f"invalid YAML: {exc}") from None
        if not isinstance(meta, dict):
            raise _Error(400, "the front matter is not a mapping")
        self._send(200, {"errors": [], "warnings": []})

    def _preupload(self, repo: Repo, rev: str, payload: dict[str, Any]) -> None:
        tree = self._commit_at(repo, rev).tree
        files = []
        for entry in payload["files"]:
            lfs = entry["path"].endswith(LFS_SUFFIXES)
            existing = tree.get(entry["path"])
            oid = (
                None if existing is None else existing.sha256 if existing.lfs else git_blob_id(existing.data)
            )
            files.append(
                {"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            )
            if oid is not None:
                files[-1]["oid"] = oid
        self._send(200, {"files": files, "commitOid": repo.head().oid})

    def _lfs_batch(self, payload: dict[str, Any]) -> None:
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.server.state.lfs:
                href = f"{self.server.url}/lfs/{obj['oid']}?signature={self.server.sign(obj['oid'])}"
                entry["actions"] = {"upload": {"href": href}}
            objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _commit(self, repo: Repo, rev: str, body: bytes) -> None:
        parent = self._commit_at(repo, rev)
        tree = dict(parent.tree)
        message = ""
        for line in body.splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value["summary"]
                if value.get("parentCommit") not in (None, parent.oid):
                    raise _Error(412, "the parent commit is not the head")
            elif key == "file":
                tree[value["path"]] = Blob(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                data = self.server.state.lfs.get(value["oid"])
                if data is None:
                    raise _Error(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                tree[value["path"]] = Blob(data, lfs=True)
            elif key == "deletedFile":
                if tree.pop(value["path"], None) is None:
                    raise _Error(
                        404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound"
                    )
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in tree if p.startswith(prefix)]:
                    del tree[path]
        commit = self.server.state.commit(repo, message, tree)
        url = f"{self.server.url}/datasets/{repo.repo_id}/commit/{commit.oid}"
        self._send(200, {"commitUrl": url, "commitOid": commit.oid, "pullRequestUrl": None})

    def _tree(self, repo: Repo, rev: str, folder: str, recursive: bool) -> None:
        tree = self._commit_at(repo, rev).tree
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries: dict[str, dict[str, Any]] = {}
        for path in sorted(tree):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):
                directory = prefix + "/".join(rest[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        directory, {"type": "directory", "oid": "0" * 40, "size": 0, "path": directory}
                    )
            if recursive or len(rest) == 1:
                blob = tree[path]
                entry = {"type": "file", "oid": git_blob_id(blob.data), "size": len(blob.data), "path": path}
                if blob.lfs:
                    entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": 134}
                entries[path] = entry
        self._send(200, list(entries.values()))

    def _refs(self, repo: Repo) -> None:
        def ref(kind: str, name: str, oid: str) -> dict[str, str]:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}

        branches = [ref("heads", name, oid) for name, oid in repo.branches.items()]
        tags = [ref("tags", name, oid) for name, oid in repo.tags.items()]
        self._send(200, {"branches": branches, "converts": [], "tags": tags, "pullRequests": []})

    def _info(self, repo: Repo, rev: str) -> None:
        commit = self._commit_at(repo, rev)
        siblings = [{"rfilename": path} for path in sorted(commit.tree)]
        self._send(200, {"id": repo.repo_id, "sha": commit.oid, "private": False, "siblings": siblings})

    def _create_tag(self, repo: Repo, rev: str, payload: dict[str, Any]) -> None:
        commit = self._commit_at(repo, rev)
        tag = payload["tag"]
        if tag in repo.tags:
            raise _Error(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.oid
        self._send(200, {})

    def _resolve(self, repo: Repo, rev: str, path: str) -> None:
        commit = self._commit_at(repo, rev)
        blob = commit.tree.get(path)
        if blob is None:
            raise _Error(404, f"Entry not found: {path}", "EntryNotFound")
        etag = blob.sha256 if blob.lfs else git_blob_id(blob.data)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{etag}"'}
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(blob.data))
        self._send(200, blob.data, headers)


class HubServer(ThreadingHTTPServer):
    """The stand-in Hub on 127.0.0.1; `state` holds its repositories."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = HubState()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def sign(self, oid: str) -> str:
        return hashlib.sha256(f"{id(self)}:{oid}".encode()).hexdigest()[:32]

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()
