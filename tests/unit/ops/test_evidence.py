"""Verification evidence without an engine: DSSE signing and checking, the keys, the Job's events, and the
evidence's round trip through a stand-in registry that stores OCI artifacts."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pulumi import automation as auto

from image_ref import ImageRef
from ops import evidence
from ops.evidence import (
    EvidenceKeyError,
    EvidenceMismatchError,
    EvidenceMissingError,
    EvidenceSignatureError,
    EvidenceUnavailableError,
    MalformedEvidenceError,
    PassedCheck,
)
from ops.registry import Registry
from tests.conftest import serving

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
IMAGE = ImageRef(registry="127.0.0.1:5000", repository="hello-world", digest=DIGEST)
CHECK = PassedCheck(image=str(IMAGE), url="http://10.0.0.1:80/", status=200, body="Hello World")
KEY = Ed25519PrivateKey.generate()
AT = "2026-12-05T23:00:00+00:00"


def envelope(image: ImageRef = IMAGE, stack: str = "dev", key: Ed25519PrivateKey = KEY) -> bytes:
    return evidence.sign(evidence.statement(image, stack, CHECK, "abc1234", AT), key)


def opened(raw: bytes, *, image: ImageRef = IMAGE, stack: str = "dev") -> evidence.Evidence:
    return evidence.open_envelope(raw, KEY.public_key(), image=image, stack=stack)


def edited(raw: bytes, change: Any) -> bytes:
    document = json.loads(raw)
    change(document)
    return json.dumps(document).encode()


def test_pae_is_dsse_s_encoding() -> None:
    # The DSSE protocol's own example.
    expected = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert evidence.pae("http://example.com/HelloWorld", b"hello world") == expected


def test_evidence_signed_with_the_key_opens_naming_stack_time_and_commit() -> None:
    found = opened(envelope())

    assert (found.image, found.stack, found.at, found.commit) == (IMAGE, "dev", AT, "abc1234")


def test_statement_is_an_in_toto_statement_about_the_image_s_digest() -> None:
    payload = json.loads(base64.b64decode(json.loads(envelope())["payload"]))

    assert payload["_type"] == "https://in-toto.io/Statement/v1"
    assert payload["subject"] == [{"name": "127.0.0.1:5000/hello-world", "digest": {"sha256": "a" * 64}}]
    assert payload["predicateType"] == evidence.PREDICATE_TYPE
    assert payload["predicate"]["stack"] == "dev"
    assert payload["predicate"]["check"] == {"url": "http://10.0.0.1:80/", "status": 200, "body": "Hello World"}


def test_evidence_signed_with_another_key_is_refused() -> None:
    with pytest.raises(EvidenceSignatureError, match=r"must be signed by the trusted key .*none by it"):
        opened(envelope(key=Ed25519PrivateKey.generate()))


def test_evidence_whose_payload_was_tampered_with_is_refused() -> None:
    def forge(document: dict[str, Any]) -> None:
        statement = json.loads(base64.b64decode(document["payload"]))
        statement["subject"][0]["digest"]["sha256"] = "b" * 64
        document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    with pytest.raises(EvidenceSignatureError, match="forged, tampered with, or signed with another key"):
        opened(edited(envelope(), forge), image=IMAGE.with_digest(OTHER))


def test_evidence_whose_signature_was_dropped_is_refused() -> None:
    with pytest.raises(EvidenceSignatureError, match="got 0 signature"):
        opened(edited(envelope(), lambda document: document.update(signatures=[])))


def test_genuine_evidence_for_another_digest_is_refused() -> None:
    with pytest.raises(
        EvidenceMismatchError, match=f"must be about 127.0.0.1:5000/hello-world@{OTHER}, got .*{DIGEST}"
    ):
        opened(envelope(), image=IMAGE.with_digest(OTHER))


def test_genuine_evidence_for_another_repository_is_refused() -> None:
    elsewhere = ImageRef(registry="127.0.0.1:5000", repository="other", digest=DIGEST)
    with pytest.raises(EvidenceMismatchError, match=r"must be about 127.0.0.1:5000/other@"):
        opened(envelope(), image=elsewhere)


def test_genuine_evidence_for_another_stack_is_refused() -> None:
    with pytest.raises(EvidenceMismatchError, match="must be about stack 'staging', got stack 'dev'"):
        opened(envelope(stack="dev"), stack="staging")


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"payloadType": "application/vnd.in-toto+json", "signatures": []}',
        b'{"payloadType": "application/vnd.in-toto+json", "payload": "%%%", "signatures": []}',
        b'{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": [{"sig": 5}]}',
        b"{" + b" " * evidence.MAX_ENVELOPE_BYTES + b"}",
    ],
    ids=["not-json", "a-list", "no-payload", "payload-not-base64", "signature-not-base64", "too-large"],
)
def test_malformed_envelope_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedEvidenceError, match="must be"):
        opened(raw)


def test_envelope_of_another_payload_type_is_refused() -> None:
    raw = edited(envelope(), lambda document: document.update(payloadType="text/plain"))
    with pytest.raises(MalformedEvidenceError, match=r"must have payloadType application/vnd.in-toto"):
        opened(raw)


def test_signed_payload_that_is_not_our_statement_is_refused() -> None:
    statement = evidence.statement(IMAGE, "dev", CHECK, "abc1234", AT)
    for change, message in (
        ({"predicateType": "https://slsa.dev/provenance/v1"}, "must be a https://in-toto.io/Statement/v1 with"),
        ({"subject": "all"}, "must hold an in-toto statement"),
    ):
        with pytest.raises(MalformedEvidenceError, match=message):
            opened(evidence.sign({**statement, **change}, KEY))


def test_evidence_tag_names_digest_and_stack_and_stays_a_tag_for_long_stack_names() -> None:
    assert evidence.evidence_tag(DIGEST, "dev") == f"sha256-{'a' * 64}.verified-dev"
    long = evidence.evidence_tag(DIGEST, "s" * 100)
    assert len(long) <= 128
    assert long != evidence.evidence_tag(DIGEST, "s" * 99)


def write_key(path: Path, key: Any, mode: int = 0o600) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(mode)
    return path


def test_signing_key_must_be_set_private_and_ed25519(tmp_path: Path) -> None:
    with pytest.raises(EvidenceKeyError, match="HELLO_EVIDENCE_KEY_FILE must name a key file"):
        evidence.signing_key({})
    with pytest.raises(EvidenceKeyError, match="must be a readable key file"):
        evidence.signing_key({"HELLO_EVIDENCE_KEY_FILE": str(tmp_path / "none")})
    shared = write_key(tmp_path / "shared.pem", KEY, 0o644)
    with pytest.raises(EvidenceKeyError, match=r"must be private \(0600\), got -rw-r--r--"):
        evidence.signing_key({"HELLO_EVIDENCE_KEY_FILE": str(shared)})
    p256 = write_key(tmp_path / "p256.pem", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(EvidenceKeyError, match="must be an Ed25519 key, got"):
        evidence.signing_key({"HELLO_EVIDENCE_KEY_FILE": str(p256)})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    garbage.chmod(0o600)
    with pytest.raises(EvidenceKeyError, match="must be a PEM private key"):
        evidence.signing_key({"HELLO_EVIDENCE_KEY_FILE": str(garbage)})
    good = write_key(tmp_path / "good.pem", KEY)
    assert evidence.signing_key({"HELLO_EVIDENCE_KEY_FILE": str(good)}).public_key() == KEY.public_key()


def test_trusted_key_must_be_set_and_an_ed25519_public_key(tmp_path: Path) -> None:
    with pytest.raises(EvidenceKeyError, match="HELLO_EVIDENCE_PUBLIC_KEY_FILE must name a key file"):
        evidence.trusted_key({})
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key")
    with pytest.raises(EvidenceKeyError, match="must be a PEM public key"):
        evidence.trusted_key({"HELLO_EVIDENCE_PUBLIC_KEY_FILE": str(garbage)})


# The verification Job of an up, as the engine reports its outputs.
JOB_URN = "urn:pulumi:dev::hello-world::hello-world:index:WebService$kubernetes:batch/v1:Job::hello-world-verify"


def job_event(op: str = "create", succeeded: int | None = 1, image: str = str(IMAGE)) -> auto.EngineEvent:
    env = [
        {"name": "IMAGE_UNDER_TEST", "value": image},
        {"name": "TARGET", "value": "http://10.0.0.1:80/"},
        {"name": "EXPECT_STATUS", "value": "200"},
        {"name": "EXPECT_BODY", "value": "Hello World"},
    ]
    outputs = {
        "spec": {"template": {"spec": {"containers": [{"name": "verify", "image": "node-base", "env": env}]}}},
        "status": {} if succeeded is None else {"succeeded": succeeded},
    }
    state = {"type": "kubernetes:batch/v1:Job", "urn": JOB_URN, "outputs": outputs}
    metadata = {"op": op, "urn": JOB_URN, "type": "kubernetes:batch/v1:Job", "provider": "", "new": state}
    return auto.EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resOutputsEvent": {"metadata": metadata}})


@pytest.mark.parametrize("op", ["create", "replace", "create-replacement"])
def test_passed_check_is_read_from_the_job_this_up_ran(op: str) -> None:
    assert evidence.passed_check([job_event(op)]) == CHECK


@pytest.mark.parametrize(
    "event",
    [job_event("same"), job_event(succeeded=None), job_event(succeeded=0)],
    ids=["job-left-as-it-was", "render-mode-no-status", "not-succeeded"],
)
def test_no_passed_check_when_the_up_ran_no_job_or_it_did_not_pass(event: auto.EngineEvent) -> None:
    assert evidence.passed_check([event]) is None


class _ArtifactRegistry(http.server.BaseHTTPRequestHandler):
    """A registry that stores blobs and manifests as the distribution API does, in memory, with no auth."""

    blobs: ClassVar[dict[str, bytes]] = {}
    manifests: ClassVar[dict[str, bytes]] = {}
    garbage: ClassVar[bytes | None] = None
    """When set, served for every manifest."""
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.send_response(202)
        self.send_header("Location", "/upload/1?state=x")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.lock:
            if self.path.startswith("/upload/"):
                digest = re.search(r"digest=([^&]+)", self.path)
                assert digest is not None
                self.blobs[digest.group(1).replace("%3A", ":")] = body
            else:
                self.manifests[self.path.rsplit("/", 1)[-1]] = body
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        body = self.garbage if self.garbage is not None and "/manifests/" in self.path else None
        body = body or (self.manifests if "/manifests/" in self.path else self.blobs).get(name)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def artifact_registry(tmp_path: Path) -> Iterator[tuple[Registry, dict[str, str]]]:
    _ArtifactRegistry.blobs.clear()
    _ArtifactRegistry.manifests.clear()
    _ArtifactRegistry.garbage = None
    private = write_key(tmp_path / "key.pem", KEY)
    public = tmp_path / "key.pub"
    public.write_bytes(
        KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    environ = {"HELLO_EVIDENCE_KEY_FILE": str(private), "HELLO_EVIDENCE_PUBLIC_KEY_FILE": str(public)}
    with serving(_ArtifactRegistry) as port:
        yield Registry(f"127.0.0.1:{port}"), environ


def image_in(registry: Registry, digest: str = DIGEST) -> ImageRef:
    return ImageRef(registry=registry.address, repository="hello-world", digest=digest)


def test_recorded_evidence_is_found_beside_the_image_and_verifies(
    artifact_registry: tuple[Registry, dict[str, str]],
) -> None:
    registry, environ = artifact_registry
    image = image_in(registry)

    where = evidence.record(registry, image, "dev", CHECK, "abc1234", environ)
    found = evidence.require(registry, image, "dev", environ)

    assert where == f"{registry.address}/hello-world:sha256-{'a' * 64}.verified-dev"
    assert (found.image, found.stack, found.commit) == (image, "dev", "abc1234")
    manifest = json.loads(_ArtifactRegistry.manifests[f"sha256-{'a' * 64}.verified-dev"])
    assert manifest["artifactType"] == evidence.ARTIFACT_TYPE
    assert manifest["layers"][0]["mediaType"] == evidence.ENVELOPE_MEDIA_TYPE


def test_no_evidence_for_a_digest_names_what_is_missing_and_how_to_get_it(
    artifact_registry: tuple[Registry, dict[str, str]],
) -> None:
    registry, environ = artifact_registry
    evidence.record(registry, image_in(registry), "dev", CHECK, "abc1234", environ)
    never = image_in(registry, OTHER)

    with pytest.raises(EvidenceMissingError) as missing:
        evidence.require(registry, never, "dev", environ)
    assert f"{OTHER} must have passed verification in stack 'dev', got no signed evidence of it" in str(missing.value)
    assert f"hello-world:sha256-{'b' * 64}.verified-dev" in str(missing.value)
    assert "`make up STACK=dev`" in str(missing.value)


def test_evidence_of_one_stack_is_no_evidence_for_another(artifact_registry: tuple[Registry, dict[str, str]]) -> None:
    registry, environ = artifact_registry
    evidence.record(registry, image_in(registry), "dev", CHECK, "abc1234", environ)

    with pytest.raises(EvidenceMissingError, match="in stack 'staging'"):
        evidence.require(registry, image_in(registry), "staging", environ)


def test_evidence_copied_under_another_digest_s_tag_is_refused(
    artifact_registry: tuple[Registry, dict[str, str]],
) -> None:
    registry, environ = artifact_registry
    evidence.record(registry, image_in(registry), "dev", CHECK, "abc1234", environ)
    manifests = _ArtifactRegistry.manifests
    manifests[f"sha256-{'b' * 64}.verified-dev"] = manifests[f"sha256-{'a' * 64}.verified-dev"]

    with pytest.raises(EvidenceMismatchError, match=f"must be about .*@{OTHER}"):
        evidence.require(registry, image_in(registry, OTHER), "dev", environ)


@pytest.mark.parametrize(
    "garbage",
    [
        b"<html>not a registry</html>",
        b'{"layers": "x"}',
        json.dumps(
            {"artifactType": "application/x-other", "layers": [{"mediaType": "x", "digest": DIGEST, "size": 1}]}
        ).encode(),
        json.dumps(
            {"artifactType": evidence.ARTIFACT_TYPE, "layers": [{"mediaType": "x", "digest": "sha256:1", "size": 1}]}
        ).encode(),
    ],
    ids=["html", "layers-not-a-list", "another-artifact-type", "malformed-layer-digest"],
)
def test_registry_answering_garbage_for_the_evidence_is_named(
    artifact_registry: tuple[Registry, dict[str, str]], garbage: bytes
) -> None:
    registry, environ = artifact_registry
    _ArtifactRegistry.garbage = garbage

    with pytest.raises(EvidenceUnavailableError, match=r"cannot read the verification evidence .*must be"):
        evidence.require(registry, image_in(registry), "dev", environ)


def test_registry_serving_a_blob_that_is_not_the_layer_s_digest_is_named(
    artifact_registry: tuple[Registry, dict[str, str]],
) -> None:
    registry, environ = artifact_registry
    evidence.record(registry, image_in(registry), "dev", CHECK, "abc1234", environ)
    for digest in list(_ArtifactRegistry.blobs):
        _ArtifactRegistry.blobs[digest] = b"swapped"

    with pytest.raises(EvidenceUnavailableError, match=r"served a blob .* whose digest is not"):
        evidence.require(registry, image_in(registry), "dev", environ)


def test_registry_serving_an_envelope_of_another_kind_is_named(
    artifact_registry: tuple[Registry, dict[str, str]],
) -> None:
    registry, environ = artifact_registry
    blob = b"{}"
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    _ArtifactRegistry.blobs[digest] = blob
    layer = {"mediaType": "text/plain", "digest": digest, "size": 2}
    _ArtifactRegistry.garbage = json.dumps({"artifactType": evidence.ARTIFACT_TYPE, "layers": [layer]}).encode()

    with pytest.raises(MalformedEvidenceError, match=r"must be a application/vnd.dsse.envelope.v1"):
        evidence.require(registry, image_in(registry), "dev", environ)


def test_an_up_whose_check_passed_records_evidence_and_says_where(
    artifact_registry: tuple[Registry, dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    registry, environ = artifact_registry
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    image = image_in(registry)
    said: list[str] = []

    evidence.record_after_up([job_event(image=str(image))], "dev", lambda _: registry, tmp_path, said.append)

    assert said == [
        f"Verification evidence for {DIGEST} in stack 'dev': signed, stored as {registry.address}/"
        f"hello-world:sha256-{'a' * 64}.verified-dev"
    ]
    assert evidence.require(registry, image, "dev", environ).stack == "dev"


def test_an_up_that_cannot_store_its_evidence_stands_and_says_so(tmp_path: Path) -> None:
    down = Registry("127.0.0.1:1")
    said: list[str] = []

    evidence.record_after_up([job_event(image=str(image_in(down)))], "dev", lambda _: down, tmp_path, said.append)

    (warning,) = said
    assert warning.startswith(f"warning: {image_in(down)} passed verification in stack 'dev', but no evidence")
    assert "promotion from dev will refuse this digest until a deploy records it" in warning


def test_a_promotion_s_up_that_checked_another_image_records_nothing(tmp_path: Path) -> None:
    said: list[str] = []

    def no_registry(_: ImageRef) -> Registry:
        raise AssertionError("nothing is stored")

    evidence.record_after_up(
        [job_event()], "staging", no_registry, tmp_path, said.append, expected=IMAGE.with_digest(OTHER)
    )

    assert said == [
        f"warning: stack 'staging''s verification must have checked {IMAGE.with_digest(OTHER)}, got {IMAGE}: "
        "no evidence recorded"
    ]
