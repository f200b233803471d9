#!/usr/bin/env python3
"""A thin layer in front of moto's ECR API (issue 18): what moto lacks, and scripted answers.

Clients (the action through the AWS SDK, the tests, the ECR layer) talk to this layer as their
ECR API endpoint (`AWS_ENDPOINT_URL_ECR`). Every request is forwarded to moto unchanged and
moto's answer comes back unchanged (status, headers, body), except:

  * the actions moto does not have, which the layer answers itself, as ECR does:
      - repository creation templates: CreateRepositoryCreationTemplate,
        DescribeRepositoryCreationTemplates, UpdateRepositoryCreationTemplate,
        DeleteRepositoryCreationTemplate (`TemplateAlreadyExistsException`,
        `TemplateNotFoundException`; prefix `ROOT` is the registry-wide template);
      - the archive storage class: UpdateImageStorageClass (`ARCHIVE` makes an image
        `ARCHIVED`, `STANDARD` makes it `ACTIVATING`, as ECR's restore takes hours); moto's
        DescribeImages and ListImages answers get `imageStatus` (and `lastArchivedAt`) and the
        `filter.imageStatus` of ECR (default `ACTIVE`: archived images are listed only when asked);
        a PutImage of an archived image (a re-push) makes it `ACTIVE` again;
      - create-on-push: a DescribeRepositories for one missing repository that carries the
        header `X-Testbed-Create-On-Push: 1` (sent by the ECR layer for a push) creates the
        repository in moto from the longest matching `CREATE_ON_PUSH` template (tag mutability
        and its filters, encryption, tags, lifecycle and repository policy) before it is
        described, as ECR's first push does; no matching template: moto's own answer;
  * overrides, registered by tests through the control API: for an action (`X-Amz-Target`'s
    operation name) and optionally a repository name, an image digest or tag, and an access key
    id (the run's `AWS_ACCESS_KEY_ID`, so that a registry-level action can be scripted for one
    run while other tests run beside it), a sequence of answers served in order, the last one
    repeating. An answer is
        {"status": 200, "body": {...}}                          a JSON body (status 200 default)
        {"status": 400, "error": "LimitExceededException", "message": "..."}
                                                                an ECR error (`__type` and
                                                                `X-Amzn-ErrorType`)
        {"forward": true}                                       moto's own answer
    with optional "headers" and "delay_ms". The latest registered override that matches wins.

Every ECR API call is counted by action, repository, image digests and tags named, access key
and origin (`ecr-layer` when the ECR layer made it, `X-Testbed-Origin` header; `client`
otherwise).

Control API (plain HTTP, JSON, no auth, outside the ECR API's `POST /`):
  GET    /_ecr-api/status                         process, moto's address, counts of templates,
                                                  archived images and overrides
  POST   /_ecr-api/overrides                      {"action", "repository"?, "digest"?, "tag"?,
                                                  "access_key"?, "answers": [...]}: answers
                                                  {"id": N}
  GET    /_ecr-api/overrides[?repository=R]       the overrides in force, with `served` counts
  DELETE /_ecr-api/overrides[?id=N|repository=R|access_key=K]   removes them (all without a query)
  GET    /_ecr-api/calls[?repository=R][&access_key=K][&digest=D][&origin=O]
                                                  {"calls": {action: count}} of matching calls
                                                  (origin `client` unless given; `any` for all)
  GET    /_ecr-api/archived?repository=R          {"digests": [...]}: the images of R that are not
                                                  ACTIVE (the ECR layer answers their pulls 404)
  POST   /_ecr-api/image-status                   {"repository", "digest", "status"}: sets an
                                                  image's archive status (ACTIVE, ARCHIVED,
                                                  ACTIVATING) without the API

Python's standard library only; one thread per connection, but one request at a time to moto,
whose backends are not thread-safe (concurrent DescribeRepositories and CreateRepository gave
HTTP 500 `dictionary changed size during iteration`); state in memory (a restart forgets
templates, archive states and overrides; moto keeps its own).

    ecr-api-layer.py --listen 127.0.0.1:5003 --moto http://127.0.0.1:5001
"""

import argparse
import datetime
import http.client
import http.server
import json
import logging
import os
import re
import sys
import threading
import time
import urllib.parse

from hop_by_hop import end_to_end

CONTROL = "/_ecr-api"
TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
# The account moto serves for any access key it does not know (the tests use `test`).
DEFAULT_REGISTRY_ID = "123456789012"
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
IMAGE_STATUSES = ("ACTIVE", "ARCHIVED", "ACTIVATING")

log = logging.getLogger("ecr-api-layer")


class EcrError(Exception):
    """An ECR error answer: its `__type` and message (HTTP 400 unless said)."""

    def __init__(self, kind, message, status=400):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


def now_epoch():
    return round(time.time(), 3)


class Call:
    """What one ECR API request named, for overrides and counts."""

    def __init__(self, action, payload, access_key, origin):
        self.action = action
        self.access_key = access_key
        self.origin = origin
        self.repository = payload.get("repositoryName") if isinstance(payload, dict) else None
        self.digests = set()
        self.tags = set()
        if isinstance(payload, dict):
            ids = list(payload.get("imageIds") or [])
            if isinstance(payload.get("imageId"), dict):
                ids.append(payload["imageId"])
            for image in ids:
                if isinstance(image, dict):
                    if image.get("imageDigest"):
                        self.digests.add(image["imageDigest"])
                    if image.get("imageTag"):
                        self.tags.add(image["imageTag"])
            if payload.get("imageDigest"):
                self.digests.add(payload["imageDigest"])
            if payload.get("imageTag"):
                self.tags.add(payload["imageTag"])
            names = payload.get("repositoryNames")
            if self.repository is None and isinstance(names, list) and len(names) == 1:
                self.repository = names[0]


class Override:
    def __init__(self, ident, spec):
        self.id = ident
        self.action = spec["action"]
        self.repository = spec.get("repository")
        self.digest = spec.get("digest")
        self.tag = spec.get("tag")
        self.access_key = spec.get("access_key")
        self.answers = spec["answers"]
        self.served = 0

    def matches(self, call):
        return (
            self.action == call.action
            and (self.repository is None or self.repository == call.repository)
            and (self.digest is None or self.digest in call.digests)
            and (self.tag is None or self.tag in call.tags)
            and (self.access_key is None or self.access_key == call.access_key)
        )

    def next_answer(self):
        answer = self.answers[min(self.served, len(self.answers) - 1)]
        self.served += 1
        return answer

    def as_json(self):
        return {
            "id": self.id,
            "action": self.action,
            "repository": self.repository,
            "digest": self.digest,
            "tag": self.tag,
            "access_key": self.access_key,
            "answers": self.answers,
            "served": self.served,
        }


def check_override(spec):
    """The reason an override cannot be used, or None."""
    if not isinstance(spec, dict):
        return "an override is a JSON object"
    if not isinstance(spec.get("action"), str) or not spec["action"]:
        return "`action` (an operation name such as `StartImageScan`) is required"
    for key in ("repository", "digest", "tag", "access_key"):
        if key in spec and spec[key] is not None and not isinstance(spec[key], str):
            return f"`{key}` is a string"
    answers = spec.get("answers")
    if not isinstance(answers, list) or not answers:
        return "`answers` is a non-empty list"
    for answer in answers:
        if not isinstance(answer, dict):
            return "each answer is a JSON object"
        if not isinstance(answer.get("status", 200), int):
            return "an answer's `status` is an integer"
    unknown = set(spec) - {"action", "repository", "digest", "tag", "access_key", "answers"}
    if unknown:
        return f"unknown keys {sorted(unknown)}"
    return None


class State:
    """Everything the layer holds; one lock, as every request is short."""

    def __init__(self, moto_url):
        parsed = urllib.parse.urlsplit(moto_url)
        self.moto_host = parsed.hostname
        self.moto_port = parsed.port or 80
        self.moto_url = moto_url
        # moto's backends are not thread-safe: a DescribeRepositories that iterates while a
        # CreateRepository adds one fails with HTTP 500 `dictionary changed size during
        # iteration` (seen here under load). ECR never answers that, so moto gets one request
        # at a time (each takes milliseconds).
        self.moto_lock = threading.Lock()
        self.lock = threading.Lock()
        self.templates = {}  # prefix -> template
        self.image_status = {}  # (repository, digest) -> {"imageStatus", "lastArchivedAt"...}
        self.overrides = []
        self.next_id = 1
        self.calls = []  # (action, repository, frozenset digests, frozenset tags, key, origin)

    # -- moto ---------------------------------------------------------------------------------

    def moto_raw(self, method, path, headers, body):
        """One request to moto as it came: (status, [(header, value)], body bytes)."""
        with self.moto_lock:
            connection = http.client.HTTPConnection(self.moto_host, self.moto_port, timeout=60)
            try:
                connection.request(method, path, body=body, headers=headers)
                answer = connection.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            finally:
                connection.close()

    def moto_call(self, action, payload, headers):
        """An ECR call of the layer's own to moto, with the client's credentials (moto reads the
        account from the access key and does not check signatures): (error type, body)."""
        sent = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": TARGET_PREFIX + action,
        }
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if headers.get(name):
                sent[name] = headers[name]
        status, _, body = self.moto_raw("POST", "/", sent, json.dumps(payload).encode())
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {"message": body.decode("utf-8", "replace")}
        if status >= 400:
            return str(parsed.get("__type", f"HTTP {status}")).rsplit("#", 1)[-1], parsed
        return None, parsed

    # -- counts and overrides -----------------------------------------------------------------

    def record(self, call):
        with self.lock:
            self.calls.append(
                (
                    call.action,
                    call.repository,
                    frozenset(call.digests),
                    frozenset(call.tags),
                    call.access_key,
                    call.origin,
                )
            )

    def count(self, repository=None, access_key=None, digest=None, origin="client"):
        counts = {}
        with self.lock:
            for action, repo, digests, _, key, call_origin in self.calls:
                if repository is not None and repo != repository:
                    continue
                if access_key is not None and key != access_key:
                    continue
                if digest is not None and digest not in digests:
                    continue
                if origin != "any" and call_origin != origin:
                    continue
                counts[action] = counts.get(action, 0) + 1
        return counts

    def override_for(self, call):
        with self.lock:
            for override in reversed(self.overrides):
                if override.matches(call):
                    return override.id, override.next_answer()
        return None, None


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()


def registry_id_of(payload):
    return payload.get("registryId") or DEFAULT_REGISTRY_ID


# -- creation templates ---------------------------------------------------------------------------

TEMPLATE_FIELDS = (
    "description",
    "encryptionConfiguration",
    "resourceTags",
    "imageTagMutability",
    "imageTagMutabilityExclusionFilters",
    "repositoryPolicy",
    "lifecyclePolicy",
    "appliedFor",
    "customRoleArn",
)
APPLIED_FOR = ("REPLICATION", "PULL_THROUGH_CACHE", "CREATE_ON_PUSH")
PREFIX = re.compile(r"^(ROOT|(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*/?)$")


def check_template(payload, creating):
    prefix = payload.get("prefix")
    if not isinstance(prefix, str) or not PREFIX.match(prefix):
        raise EcrError("InvalidParameterException", f"Invalid parameter at 'prefix' failed to satisfy constraint: '{prefix}'")
    applied = payload.get("appliedFor")
    if creating and not applied:
        raise EcrError("InvalidParameterException", "Invalid parameter at 'appliedFor': at least one value is required")
    if applied is not None and (not isinstance(applied, list) or any(a not in APPLIED_FOR for a in applied)):
        raise EcrError("InvalidParameterException", f"Invalid parameter at 'appliedFor': {applied}")
    for key in ("lifecyclePolicy", "repositoryPolicy"):
        if payload.get(key) is not None:
            try:
                json.loads(payload[key])
            except (TypeError, ValueError):
                raise EcrError("InvalidParameterException", f"Invalid parameter at '{key}': not JSON") from None
    return prefix


def template_matches(prefix, repository):
    """ECR: a template applies to repositories whose name starts with its prefix at a `/`
    boundary; `ROOT` applies to all (the longest prefix wins)."""
    if prefix == "ROOT":
        return True
    bare = prefix.rstrip("/")
    return repository == bare or repository.startswith(bare + "/")


def template_for(templates, repository, applied_for):
    best = None
    for prefix, template in templates.items():
        if applied_for in template.get("appliedFor", []) and template_matches(prefix, repository):
            length = -1 if prefix == "ROOT" else len(prefix.rstrip("/"))
            if best is None or length > best[0]:
                best = (length, template)
    return best[1] if best else None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ecr-api-layer"
    state: State = None

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- plumbing -----------------------------------------------------------------------------

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def send(self, status, body, headers=()):
        # moto's own `Server` and `Date` go back as they came; the layer's only on its answers.
        self.log_request(status)
        self.send_response_only(status)
        names = {name.lower() for name, _ in headers}
        if "server" not in names:
            self.send_header("Server", self.version_string())
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, value, headers=()):
        body = json.dumps(value).encode()
        self.send(status, body, [("Content-Type", "application/json"), *headers])

    def send_ecr(self, value):
        body = json.dumps(value).encode()
        self.send(200, body, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id())])

    def send_ecr_error(self, error):
        body = json.dumps({"__type": error.kind, "message": error.message}).encode()
        self.send(
            error.status,
            body,
            [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amzn-ErrorType", error.kind),
                ("x-amzn-RequestId", request_id()),
            ],
        )

    def forward(self, body):
        """The request to moto exactly as it came, moto's answer back exactly."""
        status, headers, answer = self.state.moto_raw(self.command, self.path, self.forward_headers(), body)
        self.send(status, answer, end_to_end(headers))

    def forward_headers(self):
        return dict(end_to_end(self.headers.items()))

    # -- dispatch -----------------------------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def dispatch(self):
        body = self.read_body()
        try:
            if self.path == CONTROL or self.path.startswith(CONTROL + "/") or self.path.startswith(CONTROL + "?"):
                return self.control(body)
            target = self.headers.get("X-Amz-Target") or ""
            if self.command != "POST" or not target.startswith(TARGET_PREFIX):
                return self.forward(body)
            self.ecr(target[len(TARGET_PREFIX):], body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - the layer must answer, and say why
            log.exception("%s %s failed", self.command, self.path)
            try:
                self.send_json(500, {"__type": "ServerException", "message": f"ecr-api-layer: {e}"})
            except OSError:
                self.close_connection = True

    def ecr(self, action, body):
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        match = CREDENTIAL.search(self.headers.get("Authorization") or "")
        origin = self.headers.get("X-Testbed-Origin") or "client"
        call = Call(action, payload, match.group(1) if match else None, origin)
        self.state.record(call)
        override_id, answer = self.state.override_for(call)
        if answer is not None and not answer.get("forward"):
            log.info("override %s answers %s for %s", override_id, action, call.repository)
            return self.scripted(answer)
        native = NATIVE.get(action)
        try:
            if native is not None:
                return native(self, payload, body)
        except EcrError as e:
            return self.send_ecr_error(e)
        return self.forward(body)

    def scripted(self, answer):
        if answer.get("delay_ms"):
            time.sleep(answer["delay_ms"] / 1000)
        status = answer.get("status", 200)
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id())]
        if "error" in answer:
            headers.append(("X-Amzn-ErrorType", answer["error"]))
            value = {"__type": answer["error"], "message": answer.get("message", answer["error"])}
        else:
            value = answer.get("body", {})
        headers.extend((answer.get("headers") or {}).items())
        raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        self.send(status, raw, headers)

    # -- templates ----------------------------------------------------------------------------

    def create_template(self, payload, _body):
        prefix = check_template(payload, creating=True)
        state = self.state
        with state.lock:
            if prefix in state.templates:
                raise EcrError("TemplateAlreadyExistsException", f"The repository creation template with prefix '{prefix}' already exists")
            stamp = now_epoch()
            template = {"prefix": prefix, "createdAt": stamp, "updatedAt": stamp}
            template.update({k: payload[k] for k in TEMPLATE_FIELDS if payload.get(k) is not None})
            template.setdefault("imageTagMutability", "MUTABLE")
            template.setdefault("encryptionConfiguration", {"encryptionType": "AES256"})
            state.templates[prefix] = template
        self.send_ecr({"registryId": registry_id_of(payload), "repositoryCreationTemplate": template})

    def update_template(self, payload, _body):
        prefix = check_template(payload, creating=False)
        state = self.state
        with state.lock:
            template = state.templates.get(prefix)
            if template is None:
                raise EcrError("TemplateNotFoundException", f"The repository creation template with prefix '{prefix}' does not exist")
            template.update({k: payload[k] for k in TEMPLATE_FIELDS if payload.get(k) is not None})
            template["updatedAt"] = now_epoch()
        self.send_ecr({"registryId": registry_id_of(payload), "repositoryCreationTemplate": template})

    def delete_template(self, payload, _body):
        prefix = payload.get("prefix")
        with self.state.lock:
            template = self.state.templates.pop(prefix, None)
        if template is None:
            raise EcrError("TemplateNotFoundException", f"The repository creation template with prefix '{prefix}' does not exist")
        self.send_ecr({"registryId": registry_id_of(payload), "repositoryCreationTemplate": template})

    def describe_templates(self, payload, _body):
        prefixes = payload.get("prefixes") or []
        with self.state.lock:
            templates = [
                t for p, t in sorted(self.state.templates.items()) if not prefixes or p in prefixes
            ]
        start = int(payload.get("nextToken") or 0)
        size = int(payload.get("maxResults") or 100)
        page = templates[start : start + size]
        answer = {"registryId": registry_id_of(payload), "repositoryCreationTemplates": page}
        if start + size < len(templates):
            answer["nextToken"] = str(start + size)
        self.send_ecr(answer)

    def describe_repositories(self, payload, body):
        """moto's answer; first, a push's create-on-push from a matching template."""
        names = payload.get("repositoryNames") or []
        if self.headers.get("X-Testbed-Create-On-Push") == "1" and len(names) == 1:
            self.create_on_push(names[0])
        return self.forward(body)

    def create_on_push(self, name):
        with self.state.lock:
            template = template_for(self.state.templates, name, "CREATE_ON_PUSH")
        if template is None:
            return
        error, _ = self.state.moto_call("DescribeRepositories", {"repositoryNames": [name]}, self.headers)
        if error != "RepositoryNotFoundException":
            return
        create = {
            "repositoryName": name,
            "imageTagMutability": template.get("imageTagMutability", "MUTABLE"),
            "encryptionConfiguration": template.get("encryptionConfiguration", {"encryptionType": "AES256"}),
        }
        if template.get("imageTagMutabilityExclusionFilters"):
            create["imageTagMutabilityExclusionFilters"] = template["imageTagMutabilityExclusionFilters"]
        if template.get("resourceTags"):
            create["tags"] = template["resourceTags"]
        error, answer = self.state.moto_call("CreateRepository", create, self.headers)
        if error and error != "RepositoryAlreadyExistsException":
            log.error("create-on-push of %s from template %s: %s %s", name, template["prefix"], error, answer)
            return
        if error is None:
            log.info("created %s on push from template %s", name, template["prefix"])
            for key, action, field in (
                ("lifecyclePolicy", "PutLifecyclePolicy", "lifecyclePolicyText"),
                ("repositoryPolicy", "SetRepositoryPolicy", "policyText"),
            ):
                if template.get(key):
                    error, answer = self.state.moto_call(action, {"repositoryName": name, field: template[key]}, self.headers)
                    if error:
                        log.error("create-on-push of %s: %s: %s %s", name, action, error, answer)

    # -- archive storage class ----------------------------------------------------------------

    def status_of(self, repository, digest):
        with self.state.lock:
            return dict(self.state.image_status.get((repository, digest)) or {"imageStatus": "ACTIVE"})

    def update_storage_class(self, payload, _body):
        name = payload.get("repositoryName")
        image_id = payload.get("imageId") or {}
        target = payload.get("targetStorageClass")
        if target not in ("ARCHIVE", "STANDARD"):
            raise EcrError("InvalidParameterException", f"Invalid parameter at 'targetStorageClass': '{target}'")
        error, found = self.state.moto_call(
            "DescribeImages", {"repositoryName": name, "imageIds": [image_id]}, self.headers
        )
        if error:
            raise EcrError(error, found.get("message", error))
        details = found.get("imageDetails") or []
        if not details:
            raise EcrError("ImageNotFoundException", f"The image with imageId {json.dumps(image_id)} does not exist within the repository with name '{name}'")
        digest = details[0]["imageDigest"]
        with self.state.lock:
            entry = self.state.image_status.setdefault((name, digest), {"imageStatus": "ACTIVE"})
            if target == "ARCHIVE":
                entry["imageStatus"] = "ARCHIVED"
                entry["lastArchivedAt"] = now_epoch()
            elif entry["imageStatus"] != "ACTIVE":
                entry["imageStatus"] = "ACTIVATING"
            status = entry["imageStatus"]
        self.send_ecr(
            {
                "registryId": registry_id_of(payload),
                "repositoryName": name,
                "imageId": {"imageDigest": digest, **({"imageTag": image_id["imageTag"]} if image_id.get("imageTag") else {})},
                "imageStatus": status,
            }
        )

    def with_status_filter(self, payload, body, action, rows_key, digest_of):
        """moto's ListImages / DescribeImages answer, with ECR's `imageStatus` filter applied
        (default `ACTIVE`) and, for DescribeImages, each image's status."""
        image_filter = payload.get("filter") if isinstance(payload.get("filter"), dict) else None
        wanted = (image_filter or {}).get("imageStatus") or "ACTIVE"
        if image_filter and "imageStatus" in image_filter:
            # moto does not know the key: it sees the rest of the request unchanged.
            payload = dict(payload, filter={k: v for k, v in image_filter.items() if k != "imageStatus"})
            body = json.dumps(payload).encode()
        headers = self.forward_headers()
        status, answer_headers, answer = self.state.moto_raw("POST", "/", headers, body)
        if status != 200:
            return self.send(status, answer, end_to_end(answer_headers))
        value = json.loads(answer)
        name = payload.get("repositoryName")
        explicit = bool(payload.get("imageIds"))
        rows = []
        for row in value.get(rows_key) or []:
            info = self.status_of(name, digest_of(row))
            if not explicit and wanted != "ANY" and info["imageStatus"] != wanted:
                continue
            if action == "DescribeImages":
                row["imageStatus"] = info["imageStatus"]
                if "lastArchivedAt" in info:
                    row["lastArchivedAt"] = info["lastArchivedAt"]
                if "lastActivatedAt" in info:
                    row["lastActivatedAt"] = info["lastActivatedAt"]
            rows.append(row)
        value[rows_key] = rows
        raw = json.dumps(value).encode()
        self.send(200, raw, end_to_end(answer_headers))

    def list_images(self, payload, body):
        self.with_status_filter(payload, body, "ListImages", "imageIds", lambda r: r.get("imageDigest"))

    def describe_images(self, payload, body):
        self.with_status_filter(payload, body, "DescribeImages", "imageDetails", lambda r: r.get("imageDigest"))

    def put_image(self, payload, body):
        """moto's PutImage; a re-push of an archived image makes it active again, as in ECR."""
        name = payload.get("repositoryName")
        digest = payload.get("imageDigest")
        with self.state.lock:
            entry = self.state.image_status.get((name, digest))
            if entry is not None and entry["imageStatus"] != "ACTIVE":
                entry["imageStatus"] = "ACTIVE"
                entry["lastActivatedAt"] = now_epoch()
                log.info("re-push of archived %s@%s: active again", name, digest)
        return self.forward(body)

    # -- control ------------------------------------------------------------------------------

    def control(self, body):
        parsed = urllib.parse.urlsplit(self.path)
        route = parsed.path[len(CONTROL):].strip("/")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        state = self.state
        try:
            spec = json.loads(body) if body else None
        except ValueError:
            return self.send_json(400, {"error": "the body is not JSON"})
        if route == "status" and self.command == "GET":
            with state.lock:
                return self.send_json(
                    200,
                    {
                        "service": "ecr-api-layer",
                        "pid": os.getpid(),
                        "moto": state.moto_url,
                        "templates": len(state.templates),
                        "image_statuses": len(state.image_status),
                        "overrides": len(state.overrides),
                        "calls": len(state.calls),
                    },
                )
        if route == "overrides":
            if self.command == "POST":
                problem = check_override(spec)
                if problem:
                    return self.send_json(400, {"error": problem})
                with state.lock:
                    override = Override(state.next_id, spec)
                    state.next_id += 1
                    state.overrides.append(override)
                return self.send_json(200, {"id": override.id})
            if self.command == "GET":
                with state.lock:
                    rows = [
                        o.as_json()
                        for o in state.overrides
                        if query.get("repository") in (None, o.repository)
                    ]
                return self.send_json(200, {"overrides": rows})
            if self.command == "DELETE":
                with state.lock:
                    before = len(state.overrides)
                    state.overrides = [
                        o
                        for o in state.overrides
                        if not (
                            ("id" not in query or str(o.id) == query["id"])
                            and ("repository" not in query or o.repository == query["repository"])
                            and ("access_key" not in query or o.access_key == query["access_key"])
                        )
                    ]
                    removed = before - len(state.overrides)
                return self.send_json(200, {"removed": removed})
        if route == "calls" and self.command == "GET":
            return self.send_json(
                200,
                {
                    "calls": state.count(
                        repository=query.get("repository"),
                        access_key=query.get("access_key"),
                        digest=query.get("digest"),
                        origin=query.get("origin", "client"),
                    )
                },
            )
        if route == "archived" and self.command == "GET":
            repository = query.get("repository")
            with state.lock:
                digests = sorted(
                    digest
                    for (name, digest), entry in state.image_status.items()
                    if name == repository and entry["imageStatus"] != "ACTIVE"
                )
            return self.send_json(200, {"digests": digests})
        if route == "image-status" and self.command == "POST":
            if not isinstance(spec, dict) or spec.get("status") not in IMAGE_STATUSES or not spec.get("repository") or not spec.get("digest"):
                return self.send_json(400, {"error": "{\"repository\", \"digest\", \"status\": ACTIVE|ARCHIVED|ACTIVATING} expected"})
            with state.lock:
                entry = state.image_status.setdefault((spec["repository"], spec["digest"]), {"imageStatus": "ACTIVE"})
                entry["imageStatus"] = spec["status"]
                if spec["status"] == "ARCHIVED":
                    entry["lastArchivedAt"] = now_epoch()
            return self.send_json(200, entry)
        return self.send_json(404, {"error": f"no control route {self.command} {parsed.path}"})


NATIVE = {
    "CreateRepositoryCreationTemplate": Handler.create_template,
    "UpdateRepositoryCreationTemplate": Handler.update_template,
    "DeleteRepositoryCreationTemplate": Handler.delete_template,
    "DescribeRepositoryCreationTemplates": Handler.describe_templates,
    "DescribeRepositories": Handler.describe_repositories,
    "UpdateImageStorageClass": Handler.update_storage_class,
    "ListImages": Handler.list_images,
    "DescribeImages": Handler.describe_images,
    "PutImage": Handler.put_image,
}

_request_counter = iter(range(1, 1 << 62))


def request_id():
    return f"ecr-api-layer-{os.getpid()}-{next(_request_counter)}"


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listen", default="127.0.0.1:5003", help="host:port to serve on")
    parser.add_argument("--moto", default="http://127.0.0.1:5001", help="moto server's URL")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    host, port = args.listen.rsplit(":", 1)
    Handler.state = State(args.moto)
    server = Server((host, int(port)), Handler)
    log.info("listening on %s, moto %s", args.listen, args.moto)
    server.serve_forever()


if __name__ == "__main__":
    main()
