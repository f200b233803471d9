#!/usr/bin/env python3
"""ECR rules in front of the testbed registry (issue 8, part 1).

A thin HTTP layer between the clients (the Docker Engine, skopeo, the action, the tests) and
docker-registry, so that docker-registry (the store) plus moto (the ECR API) behave as Amazon ECR
does. It is not a mock: every request that passes the rules ends in docker-registry, whose answer
goes back unchanged; moto is read for the repository and written so that the ECR API sees what
was pushed.

Rules (what real ECR does that docker-registry does not):
  * a request for a repository that moto does not have: 404 `NAME_UNKNOWN` (real ECR drops the
    connection on a push there; issue 8 asks for the 404, which clients report as `name unknown`);
  * a manifest PUT by tag whose tag is immutable in that repository (moto's
    `imageTagMutability`: IMMUTABLE, MUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION with
    `imageTagMutabilityExclusionFilters`, ECR wildcards where `*` matches any run of characters)
    and that already exists: 400 `TAG_INVALID`, same digest or not (aws/containers-roadmap#2179);
  * an index or manifest list whose child manifests are not in the repository: 400
    `MANIFEST_BLOB_UNKNOWN`;
  * every manifest PUT that docker-registry accepts is recorded in moto with `PutImage` (its tag,
    its real sha256 digest, its media type), so ListImages, DescribeImages and BatchGetImage list
    what was pushed; a manifest DELETE is mirrored with `BatchDeleteImage`.
  * a manifest GET or HEAD of an image the ECR API layer (issue 18) reports archived or being
    restored: 404 `MANIFEST_UNKNOWN`, as ECR answers a pull of an archived image;
  * a push (upload start, mount, manifest PUT) to a missing repository asks the ECR API for it
    with the header `X-Testbed-Create-On-Push: 1`, so that the ECR API layer can create it from a
    matching `CREATE_ON_PUSH` creation template first, as ECR's create-on-push does (plain moto
    ignores the header).
Authentication comes first: docker-registry decides (htpasswd) and its 401 goes back unchanged
before any rule or fault answers. `--moto` is normally the ECR API layer in front of moto; every
call the layer makes there carries `X-Testbed-Origin: ecr-layer`, so that the API layer counts
them apart from the clients'. Requests are also counted by the `Host` they named (`hosts`).

Faults, switched on and off at run time, for one repository or for all:
  * `throttle_manifest_puts: N`  429 `TOOMANYREQUESTS` on the next N manifest PUTs;
  * `unavailable_every: K`        503 `UNAVAILABLE` on every Kth request of the scope, counted
                                  from when it is set (0: off; `/v2/` itself always passes);
  * `drop_blob_uploads: N`        the next N blob uploads that carry a body (PATCH, PUT, or a
                                  monolithic POST) have part of their body read and forwarded, then
                                  the connection is closed without an answer;
    `drop_after_bytes: B`         how much is read first (default: half the Content-Length, or
                                  1 MiB when the body is chunked);
  * `delay_ms: D`                 every response waits D ms.
Faults act after authentication, in this order: delay, 503, 429, then the rules, then the drop
(on the body of a request the rules let through). A fault of the
repository scope applies to requests for that repository only; a global fault applies to all.
Tests run in parallel on one layer, so they use the repository scope.

Control API (plain HTTP, no auth, on the layer's own address, outside `/v2/`):
  GET    /_ecr-layer/status                       process, addresses, RSS and peak RSS, global
                                                  counters and faults
  GET    /_ecr-layer/counters[?repository=R]      counters of one repository (or global)
  GET    /_ecr-layer/faults[?repository=R]        the faults in force for that scope
  POST   /_ecr-layer/faults[?repository=R]        JSON object of faults to set (others kept;
                                                  0 switches one off); answers the new faults
  DELETE /_ecr-layer/faults[?repository=R]        every fault of that scope off
  POST   /_ecr-layer/reset[?repository=R]         faults off and counters zero for that scope;
                                                  without `repository`: for every scope
Counters (per repository and global): `requests` by kind (base, catalog, blob_head, blob_get,
blob_delete, upload_start, mount, upload_patch, upload_put, upload_status, upload_cancel,
manifest_head, manifest_get, manifest_put, manifest_delete, tag_list, referrers, other),
`responses` by kind then status, `blob_bytes_received` (blob bodies read from clients),
`blob_bytes_sent` (blob bodies sent to clients), `faults` (throttled, unavailable, dropped,
delayed), `rules` (unauthorized, name_unknown, tag_invalid, manifest_blob_unknown) and `moto`
(put_image, batch_delete_image, errors, unrecordable: an untagged manifest in a repository with
exclusion filters, which moto cannot hold). `status` adds `rss_bytes` and `peak_rss_bytes`
(VmRSS/VmHWM of this process).

Memory: blob bodies are streamed in both directions with backpressure and never held whole;
manifests (ECR limit 4 MiB) are buffered to check and record them. A per-repository
readers/writer lock closes a race of docker-registry's own (see RepositoryLock).

    ecr-layer.py --listen 127.0.0.1:5000 --upstream http://127.0.0.1:5002 \
                 --moto http://127.0.0.1:5001 --region us-east-1
"""

import argparse
import asyncio
import collections
import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import sys
import time

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from hop_by_hop import end_to_end

CONTROL = "/_ecr-layer"
# ECR refuses manifests over 4 MiB; bigger ones are not buffered.
MANIFEST_LIMIT = 4 * 1024 * 1024
DEFAULT_DROP_AFTER = 1024 * 1024
# The account moto serves for any access key it does not know (the tests use `test`).
REGISTRY_ID = "123456789012"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_ACCEPT = ", ".join(
    INDEX_TYPES
    + (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
FAULTS = (
    "throttle_manifest_puts",
    "unavailable_every",
    "drop_blob_uploads",
    "drop_after_bytes",
    "delay_ms",
)
# The distribution API's paths; a repository name may hold `/` (distribution-spec "Endpoints").
ROUTE = re.compile(
    r"^/v2/(?P<name>.+?)/(?:"
    r"(?P<uploads>blobs/uploads/?)(?P<upload>[^/]*)"
    r"|blobs/(?P<blob>[^/]+)"
    r"|manifests/(?P<reference>[^/]+)"
    r"|(?P<tags>tags/list)"
    r"|referrers/(?P<referrer>[^/]+)"
    r")$"
)
# What pushes: a missing repository is asked for with create-on-push in mind.
PUSH_KINDS = ("upload_start", "mount", "upload_patch", "upload_put", "manifest_put")
DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")

log = logging.getLogger("ecr-layer")


class DroppedUpload(Exception):
    """The drop fault fired: the client connection is to be closed without an answer."""


class Counters:
    """What one scope (a repository, or everything) saw."""

    def __init__(self):
        self.requests = collections.Counter()
        self.responses = collections.defaultdict(collections.Counter)
        self.faults = collections.Counter()
        self.rules = collections.Counter()
        self.moto = collections.Counter()
        self.hosts = collections.Counter()
        self.blob_bytes_received = 0
        self.blob_bytes_sent = 0

    def as_json(self):
        return {
            "requests": dict(self.requests),
            "responses": {kind: {str(s): n for s, n in c.items()} for kind, c in self.responses.items()},
            "blob_bytes_received": self.blob_bytes_received,
            "blob_bytes_sent": self.blob_bytes_sent,
            "faults": dict(self.faults),
            "rules": dict(self.rules),
            "moto": dict(self.moto),
            "hosts": dict(self.hosts),
        }


class Scope:
    """Faults and counters of one repository, or the global ones."""

    def __init__(self):
        self.counters = Counters()
        self.faults = {name: 0 for name in FAULTS}
        # Requests seen since `unavailable_every` was set: every Kth one fails.
        self.seen = 0

    def set_faults(self, changes):
        for name, value in changes.items():
            if name not in FAULTS:
                raise ValueError(f"unknown fault `{name}`; known: {', '.join(FAULTS)}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"fault `{name}` must be a non-negative integer, got `{value!r}`")
            self.faults[name] = value
        if "unavailable_every" in changes:
            self.seen = 0


class RepositoryLock:
    """Requests that read one repository's link files share it; one that writes them has it
    alone, and a waiting writer holds new readers back.

    docker-registry's filesystem storage rewrites a link file in place (truncate, then write) on
    every manifest PUT, blob commit and mount, even with the same content, so a read beside it
    can find the file empty and answer 500 `invalid checksum digest format` (seen with 8 runs
    pushing one repository at once). ECR has no such window, so the layer closes it."""

    def __init__(self):
        self.readers = 0
        self.writing = False
        self.writers_waiting = 0
        self.changed = asyncio.Condition()

    async def acquire(self, write):
        async with self.changed:
            if write:
                self.writers_waiting += 1
                try:
                    await self.changed.wait_for(lambda: not self.writing and not self.readers)
                finally:
                    self.writers_waiting -= 1
                self.writing = True
            else:
                await self.changed.wait_for(lambda: not self.writing and not self.writers_waiting)
                self.readers += 1

    async def release(self, write):
        async with self.changed:
            if write:
                self.writing = False
            else:
                self.readers -= 1
            self.changed.notify_all()

    @contextlib.asynccontextmanager
    async def writing_alone(self):
        await self.acquire(True)
        try:
            yield
        finally:
            await self.release(True)


class Hold:
    """One request's hold on a RepositoryLock: taken at most once and let go once, possibly from
    another task (the one that sends a streamed body)."""

    def __init__(self, lock, write):
        self.lock = lock
        self.write = write
        self.held = False
        self.done = False

    async def take(self):
        if self.lock is None or self.held or self.done:
            return
        await self.lock.acquire(self.write)
        if self.done:
            # The request ended while we waited for the lock.
            await self.lock.release(self.write)
            return
        self.held = True

    async def let_go(self):
        self.done = True
        if self.held:
            self.held = False
            await self.lock.release(self.write)


def route_of(method, path, query):
    """(kind, repository, reference or digest) of a request path."""
    if path in ("/v2", "/v2/"):
        return "base", None, None
    if path == "/v2/_catalog":
        return "catalog", None, None
    match = ROUTE.match(path)
    if not match:
        return "other", None, None
    name = match["name"]
    if match["uploads"]:
        if not match["upload"]:
            if method == "POST" and "mount" in query:
                return "mount", name, query.get("mount")
            return ("upload_start" if method == "POST" else "other"), name, None
        kind = {"PATCH": "upload_patch", "PUT": "upload_put", "GET": "upload_status", "DELETE": "upload_cancel"}
        return kind.get(method, "other"), name, match["upload"]
    if match["blob"]:
        kind = {"HEAD": "blob_head", "GET": "blob_get", "DELETE": "blob_delete"}
        return kind.get(method, "other"), name, match["blob"]
    if match["reference"]:
        kind = {"HEAD": "manifest_head", "GET": "manifest_get", "PUT": "manifest_put", "DELETE": "manifest_delete"}
        return kind.get(method, "other"), name, match["reference"]
    if match["tags"]:
        return ("tag_list" if method == "GET" else "other"), name, None
    return ("referrers" if method == "GET" else "other"), name, match["referrer"]


def wildcard(pattern):
    """An ECR exclusion filter (`[0-9a-zA-Z._*-]`, `*` any run of characters) as a regex that
    must match the whole tag."""
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern))


def tag_is_immutable(repository, tag):
    """Whether `tag` may not be overwritten in the repository moto describes.

    ECR: IMMUTABLE_WITH_EXCLUSION makes every tag immutable except those matching a filter;
    MUTABLE_WITH_EXCLUSION makes only the matching tags immutable."""
    mutability = repository.get("imageTagMutability", "MUTABLE")
    filters = [f.get("filter", "") for f in repository.get("imageTagMutabilityExclusionFilters") or []]
    matched = any(wildcard(f).fullmatch(tag) for f in filters)
    if mutability == "IMMUTABLE":
        return True
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        return not matched
    if mutability == "MUTABLE_WITH_EXCLUSION":
        return matched
    return False


def error_response(status, code, message, detail=None, headers=None):
    """A distribution-spec error document."""
    body = {"errors": [{"code": code, "message": message, "detail": detail}]}
    return web.json_response(body, status=status, headers=headers)


def memory():
    """(VmRSS, VmHWM) of this process in bytes."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class Layer:
    def __init__(self, args):
        self.listen = args.listen
        self.upstream = args.upstream.rstrip("/")
        self.moto_url = args.moto.rstrip("/")
        self.region = args.region
        self.access_key = os.environ.get("AWS_ACCESS_KEY_ID", "test")
        self.started = time.time()
        self.global_scope = Scope()
        self.scopes = {}
        # Authorization header value -> until when docker-registry accepted it.
        self.authorized_until = {}
        # Per repository: readers and writers of docker-registry's link files (RepositoryLock).
        # Manifest PUTs and DELETEs hold it alone from check to record, as ECR's are atomic: two
        # concurrent PUTs of one immutable tag must not both pass the check.
        self.locks = collections.defaultdict(RepositoryLock)
        self.session = None
        self.moto_session = None

    async def start(self, app):
        # No timeout on the whole request: a 1 GiB upload takes as long as it takes.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        self.session = aiohttp.ClientSession(
            timeout=timeout,
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )
        self.moto_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self, app):
        await self.session.close()
        await self.moto_session.close()

    def scope(self, repository):
        if repository not in self.scopes:
            self.scopes[repository] = Scope()
        return self.scopes[repository]

    def scopes_of(self, repository):
        return [self.global_scope] + ([self.scope(repository)] if repository else [])

    # -- moto ---------------------------------------------------------------------------------

    async def moto(self, action, payload, extra_headers=None):
        """One ECR API call to moto: (error type or None, answer)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"AmazonEC2ContainerRegistry_V20150921.{action}",
            "X-Amz-Date": stamp,
            # moto reads the account from the access key and the region from the scope; it does
            # not check the signature.
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={self.access_key}/{stamp[:8]}/{self.region}/ecr/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
            ),
            "X-Testbed-Origin": "ecr-layer",
            **(extra_headers or {}),
        }
        async with self.moto_session.post(self.moto_url + "/", data=json.dumps(payload), headers=headers) as answer:
            text = await answer.text()
            try:
                body = json.loads(text) if text else {}
            except ValueError:
                body = {"message": text}
            if answer.status >= 400:
                kind = str(body.get("__type", f"HTTP {answer.status}")).rsplit("#", 1)[-1]
                return kind, body
            return None, body

    async def describe_repository(self, name, push=False):
        extra = {"X-Testbed-Create-On-Push": "1"} if push else None
        error, body = await self.moto("DescribeRepositories", {"repositoryNames": [name]}, extra)
        if error == "RepositoryNotFoundException":
            return None
        if error:
            raise RuntimeError(f"moto DescribeRepositories `{name}`: {error}: {body}")
        repositories = body.get("repositories") or []
        return repositories[0] if repositories else None

    async def record_manifest(self, scopes, name, repository, reference, manifest, media_type, digest):
        """Mirror a manifest docker-registry accepted in moto (`PutImage`), so the ECR API lists
        it. moto's own answers differ from ECR's in places; see the notes inline."""

        def count(key):
            for scope in scopes:
                scope.counters.moto[key] += 1

        text = manifest.decode("utf-8")
        payload = {"repositoryName": name, "imageManifest": text, "imageDigest": digest}
        if media_type:
            payload["imageManifestMediaType"] = media_type
        tag = None if DIGEST.match(reference) else reference
        if tag is None:
            # By digest: ECR keeps an untagged image. moto would re-tag an existing identical
            # image with `None`, and raises a 500 on an untagged PutImage in a repository with
            # exclusion filters (it matches the filters against the missing tag).
            error, found = await self.moto("BatchGetImage", {"repositoryName": name, "imageIds": [{"imageDigest": digest}]})
            if not error and found.get("images"):
                return
            if repository.get("imageTagMutabilityExclusionFilters"):
                count("unrecordable")
                log.warning("moto cannot hold untagged %s in %s (exclusion filters)", digest, name)
                return
        else:
            payload["imageTag"] = tag
        error, body = await self.moto("PutImage", payload)
        if error == "ImageAlreadyExistsException":
            # moto refuses the same manifest under the same tag (ECR accepts it on a mutable
            # repository), and applies exclusion filters as regexes (`v*` matches every tag):
            # the registry took the push, so moto follows it.
            current = await self.moto("BatchGetImage", {"repositoryName": name, "imageIds": [{"imageTag": tag}]})
            images = current[1].get("images") or [] if not current[0] else []
            if any(i.get("imageId", {}).get("imageDigest") == digest for i in images):
                count("put_image")
                return
            await self.moto("BatchDeleteImage", {"repositoryName": name, "imageIds": [{"imageTag": tag}]})
            error, body = await self.moto("PutImage", payload)
        if error:
            count("errors")
            log.error("moto PutImage %s:%s (%s) failed: %s %s", name, reference, digest, error, body)
        else:
            count("put_image")

    # -- upstream -----------------------------------------------------------------------------

    def upstream_headers(self, request):
        # A multidict: clients send several `Accept` lines, and docker-registry answers a client
        # that does not accept manifest lists with the amd64 manifest instead.
        headers = CIMultiDict()
        for key, value in end_to_end(request.headers.items()):
            headers.add(key, value)
        # docker-registry builds upload `Location` URLs from Host: they must point back here.
        headers["Host"] = request.headers.get("Host", self.listen)
        return headers

    async def check_auth(self, request, scopes):
        """None when docker-registry accepts the request's credentials, else its 401 as is."""
        auth = request.headers.get("Authorization")
        now = time.monotonic()
        if auth and self.authorized_until.get(auth, 0) > now:
            return None
        headers = {"Host": request.headers.get("Host", self.listen)}
        if auth:
            headers["Authorization"] = auth
        async with self.session.get(self.upstream + "/v2/", headers=headers, allow_redirects=False) as answer:
            body = await answer.read()
            if answer.status == 200:
                self.authorized_until[auth] = now + 60
                return None
            for scope in scopes:
                scope.counters.rules["unauthorized"] += 1
            headers = dict(end_to_end(answer.headers.items()))
            return web.Response(status=answer.status, body=body, headers=headers)

    async def archived_digests(self, name):
        """The digests the ECR API layer holds as archived or being restored in `name` (none
        when `--moto` is moto itself)."""
        url = f"{self.moto_url}/_ecr-api/archived?repository={name}"
        try:
            async with self.moto_session.get(url) as answer:
                if answer.status != 200:
                    return set()
                return set((await answer.json()).get("digests") or [])
        except (aiohttp.ClientError, ValueError):
            return set()

    async def archived_manifest(self, request, name, reference):
        """The digest when `reference` names an archived image, else None."""
        archived = await self.archived_digests(name)
        if not archived:
            return None
        if reference in archived:
            return reference
        if DIGEST.match(reference):
            return None
        url = URL(f"{self.upstream}/v2/{name}/manifests/{reference}", encoded=True)
        headers = {"Accept": MANIFEST_ACCEPT, "Host": request.headers.get("Host", self.listen)}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        async with self.session.head(url, headers=headers, allow_redirects=False) as answer:
            digest = answer.headers.get("Docker-Content-Digest")
        return digest if digest in archived else None

    async def exists_upstream(self, request, name, reference):
        """Whether docker-registry holds the manifest `reference` in `name` (as the client)."""
        url = URL(f"{self.upstream}/v2/{name}/manifests/{reference}", encoded=True)
        headers = {"Accept": MANIFEST_ACCEPT, "Host": request.headers.get("Host", self.listen)}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        async with self.session.head(url, headers=headers, allow_redirects=False) as answer:
            if answer.status == 200:
                return True
            if answer.status == 404:
                return False
            raise RuntimeError(f"HEAD {name}/manifests/{reference} on docker-registry: {answer.status}")

    async def body_stream(self, request, scopes, drop_after, dropped, hold_before_last):
        """The client's blob body, chunk by chunk as it arrives (backpressure both ways),
        counted. When the drop fault fired, it stops after `drop_after` bytes and sets
        `dropped`, which fails the upstream request. One chunk is held back, so that a commit
        takes `hold_before_last` before docker-registry can have the last byte (and commit)."""
        received = 0
        held_back = b""
        async for chunk in request.content.iter_any():
            if drop_after is not None and received + len(chunk) >= drop_after:
                part = chunk[: drop_after - received]
                for scope in scopes:
                    scope.counters.blob_bytes_received += len(part)
                if held_back:
                    yield held_back
                if part:
                    yield part
                dropped.set()
                raise DroppedUpload()
            received += len(chunk)
            for scope in scopes:
                scope.counters.blob_bytes_received += len(chunk)
            if held_back:
                yield held_back
            held_back = chunk
        if drop_after is not None:
            # The whole (small) body came before the drop point: drop anyway, unanswered.
            if held_back:
                yield held_back
            dropped.set()
            raise DroppedUpload()
        if hold_before_last is not None:
            await hold_before_last.take()
        if held_back:
            yield held_back

    async def forward(self, request, kind, scopes, body=None, drop_after=None, before_answer=None, lock=None):
        """Sends the request to docker-registry and streams its answer back; returns the
        response (already sent). `before_answer(status)` runs between docker-registry's answer
        and ours, so that moto holds a push by the time its client learns it succeeded.
        `lock` is `(RepositoryLock, write)`, held until docker-registry's answer arrives."""
        headers = self.upstream_headers(request)
        dropped = asyncio.Event()
        hold = Hold(*lock) if lock else Hold(None, False)
        streamed = body is None and request.body_exists
        if not streamed:
            await hold.take()
        if body is not None:
            data = body
        elif streamed:
            data = self.body_stream(request, scopes, drop_after, dropped, hold if hold.write else None)
            if request.content_length is not None:
                # A known length goes on as Content-Length (docker-registry and ECR treat a
                # sized PUT differently from a chunked one); otherwise aiohttp sends it chunked.
                headers["Content-Length"] = str(request.content_length)
        else:
            data = None
        url = URL(self.upstream + request.raw_path, encoded=True)
        try:
            async with self.session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False
            ) as answer:
                if before_answer is not None:
                    await before_answer(answer.status)
                await hold.let_go()
                response = web.StreamResponse(status=answer.status, reason=answer.reason)
                for key, value in end_to_end(answer.headers.items()):
                    response.headers.add(key, value)
                if answer.content_length is not None:
                    response.content_length = answer.content_length
                elif "Content-Length" in answer.headers:
                    response.headers["Content-Length"] = answer.headers["Content-Length"]
                await response.prepare(request)
                if request.method != "HEAD":
                    async for chunk in answer.content.iter_any():
                        if kind == "blob_get":
                            for scope in scopes:
                                scope.counters.blob_bytes_sent += len(chunk)
                        await response.write(chunk)
                await response.write_eof()
                return response
        except Exception:
            # aiohttp reports the body's end as a failed send; the handler drops the client.
            if dropped.is_set():
                raise DroppedUpload() from None
            raise
        finally:
            await hold.let_go()

    # -- requests -----------------------------------------------------------------------------

    async def handle_v2(self, request):
        kind, name, reference = route_of(request.method, request.path, request.query)
        scopes = self.scopes_of(name)
        for scope in scopes:
            scope.counters.requests[kind] += 1
            scope.counters.hosts[request.headers.get("Host", "")] += 1
        status = None
        try:
            response = await self.answer(request, kind, name, reference, scopes)
            status = response.status
            return response
        except DroppedUpload:
            status = "dropped"
            for scope in scopes:
                scope.counters.faults["dropped"] += 1
            log.info("dropped the connection of %s %s", request.method, request.path)
            request.protocol.force_close()
            if request.transport is not None:
                request.transport.abort()
            # aiohttp cannot write this to the closed socket: it logs the request and moves on.
            return web.Response(status=499, text="connection dropped by ecr-layer")
        finally:
            for scope in scopes:
                scope.counters.responses[kind][status if status is not None else "error"] += 1

    async def answer(self, request, kind, name, reference, scopes):
        if kind == "base":
            return await self.forward(request, kind, scopes)
        denied = await self.check_auth(request, scopes)
        if denied is not None:
            return denied
        delay = max(scope.faults["delay_ms"] for scope in scopes)
        if delay:
            for scope in scopes:
                scope.counters.faults["delayed"] += 1
            await asyncio.sleep(delay / 1000)
        for scope in scopes:
            every = scope.faults["unavailable_every"]
            if every:
                scope.seen += 1
                if scope.seen % every == 0:
                    for each in scopes:
                        each.counters.faults["unavailable"] += 1
                    return error_response(503, "UNAVAILABLE", "Service Unavailable (ecr-layer fault)")
        if kind == "manifest_put":
            for scope in scopes:
                if scope.faults["throttle_manifest_puts"]:
                    scope.faults["throttle_manifest_puts"] -= 1
                    for each in scopes:
                        each.counters.faults["throttled"] += 1
                    return error_response(429, "TOOMANYREQUESTS", "Rate exceeded")
        if name is None:
            return await self.forward(request, kind, scopes)

        repository = await self.describe_repository(name, push=kind in PUSH_KINDS)
        if repository is None:
            for scope in scopes:
                scope.counters.rules["name_unknown"] += 1
            return error_response(
                404,
                "NAME_UNKNOWN",
                f"The repository with name '{name}' does not exist in the registry with id "
                f"'{REGISTRY_ID}'",
            )

        drop_after = None
        if kind in ("upload_patch", "upload_put", "upload_start") and request.body_exists:
            for scope in scopes:
                if scope.faults["drop_blob_uploads"]:
                    scope.faults["drop_blob_uploads"] -= 1
                    drop_after = scope.faults["drop_after_bytes"] or (
                        request.content_length // 2 if request.content_length else DEFAULT_DROP_AFTER
                    )
                    break
        if kind == "manifest_put":
            return await self.put_manifest(request, name, reference, repository, scopes)
        if kind == "manifest_delete":
            return await self.delete_manifest(request, name, reference, scopes)
        if kind in ("manifest_get", "manifest_head"):
            archived = await self.archived_manifest(request, name, reference)
            if archived:
                for scope in scopes:
                    scope.counters.rules["archived"] += 1
                return error_response(
                    404,
                    "MANIFEST_UNKNOWN",
                    f"The image {archived} in repository '{name}' is archived: restore it before pulling it",
                )
        lock = None
        if kind in ("manifest_get", "manifest_head", "blob_get", "blob_head"):
            lock = (self.locks[name], False)
        elif kind in ("mount", "upload_put", "blob_delete") or (kind == "upload_start" and "digest" in request.query):
            # What writes a link: a mount, a commit (the PUT, or a POST with the whole blob).
            lock = (self.locks[name], True)
        return await self.forward(request, kind, scopes, drop_after=drop_after, lock=lock)

    async def put_manifest(self, request, name, reference, repository, scopes):
        def rule(key):
            for scope in scopes:
                scope.counters.rules[key] += 1

        if request.content_length is not None and request.content_length > MANIFEST_LIMIT:
            return error_response(400, "MANIFEST_INVALID", "manifest is larger than 4 MiB")
        manifest = bytearray()
        async for chunk in request.content.iter_any():
            manifest += chunk
            if len(manifest) > MANIFEST_LIMIT:
                return error_response(400, "MANIFEST_INVALID", "manifest is larger than 4 MiB")
        manifest = bytes(manifest)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        media_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            document = json.loads(manifest)
        except ValueError:
            document = None
        is_tag = not DIGEST.match(reference)
        async with self.locks[name].writing_alone():
            if is_tag and tag_is_immutable(repository, reference) and await self.exists_upstream(request, name, reference):
                rule("tag_invalid")
                return error_response(
                    400,
                    "TAG_INVALID",
                    f"The image tag '{reference}' already exists in the '{name}' repository and "
                    "cannot be overwritten because the repository is immutable.",
                )
            if isinstance(document, dict) and (
                media_type in INDEX_TYPES or document.get("mediaType") in INDEX_TYPES
            ):
                for child in document.get("manifests") or []:
                    child_digest = child.get("digest", "") if isinstance(child, dict) else ""
                    if not DIGEST.match(child_digest) or not await self.exists_upstream(request, name, child_digest):
                        rule("manifest_blob_unknown")
                        return error_response(
                            400,
                            "MANIFEST_BLOB_UNKNOWN",
                            f"Manifest references {child_digest or 'a child'} which is not in the repository",
                            detail={"digest": child_digest},
                        )

            async def record(status):
                if status == 201:
                    await self.record_manifest(scopes, name, repository, reference, manifest, media_type, digest)

            return await self.forward(request, "manifest_put", scopes, body=manifest, before_answer=record)

    async def delete_manifest(self, request, name, reference, scopes):
        async def mirror(status):
            if 200 <= status < 300:
                key = "imageDigest" if DIGEST.match(reference) else "imageTag"
                error, _ = await self.moto("BatchDeleteImage", {"repositoryName": name, "imageIds": [{key: reference}]})
                for scope in scopes:
                    scope.counters.moto["errors" if error else "batch_delete_image"] += 1

        return await self.forward(
            request, "manifest_delete", scopes, before_answer=mirror, lock=(self.locks[name], True)
        )

    # -- control API --------------------------------------------------------------------------

    def control_scope(self, request):
        repository = request.query.get("repository")
        return repository, (self.scope(repository) if repository else self.global_scope)

    async def control_status(self, request):
        rss, peak = memory()
        return web.json_response(
            {
                "service": "ecr-layer",
                "pid": os.getpid(),
                "program": os.path.abspath(__file__),
                "listen": self.listen,
                "upstream": self.upstream,
                "moto": self.moto_url,
                "region": self.region,
                "uptime_seconds": round(time.time() - self.started, 1),
                "rss_bytes": rss,
                "peak_rss_bytes": peak,
                "repositories_seen": len(self.scopes),
                "faults": self.global_scope.faults,
                "counters": self.global_scope.counters.as_json(),
            }
        )

    async def control_counters(self, request):
        repository, scope = self.control_scope(request)
        return web.json_response({"repository": repository, **scope.counters.as_json()})

    async def control_faults(self, request):
        repository, scope = self.control_scope(request)
        if request.method == "POST":
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object of faults")
                scope.set_faults(changes)
            except ValueError as error:
                return web.json_response({"error": str(error)}, status=400)
            log.info("faults for %s: %s", repository or "every repository", scope.faults)
        elif request.method == "DELETE":
            scope.set_faults({name: 0 for name in FAULTS})
        return web.json_response({"repository": repository, "faults": scope.faults})

    async def control_reset(self, request):
        repository, _ = self.control_scope(request)
        if repository:
            self.scopes[repository] = Scope()
        else:
            self.global_scope = Scope()
            self.scopes.clear()
        return web.json_response({"repository": repository, "reset": True})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:5000", help="host:port to serve on")
    parser.add_argument("--upstream", default="http://127.0.0.1:5002", help="docker-registry's URL")
    parser.add_argument("--moto", default="http://127.0.0.1:5001", help="moto server's URL")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"), help="ECR region in moto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    layer = Layer(args)
    # Manifest bodies are read by us; blob bodies stream, so no request size limit.
    app = web.Application(client_max_size=0)
    app.on_startup.append(layer.start)
    app.on_cleanup.append(layer.stop)
    app.router.add_get(CONTROL + "/status", layer.control_status)
    app.router.add_get(CONTROL + "/counters", layer.control_counters)
    app.router.add_route("*", CONTROL + "/faults", layer.control_faults)
    app.router.add_post(CONTROL + "/reset", layer.control_reset)
    app.router.add_route("*", "/v2{tail:.*}", layer.handle_v2)
    host, _, port = args.listen.rpartition(":")
    web.run_app(
        app,
        host=host,
        port=int(port),
        print=lambda *_: log.info("listening on %s, upstream %s, moto %s", args.listen, args.upstream, args.moto),
        access_log_format='%a "%r" %s %b %Tfs',
    )


if __name__ == "__main__":
    main()
