"""Signed verification evidence: "digest D passed verification in stack S at time T", stored beside the image.

A deploy whose in-cluster verification Job ran and passed (read from that run's engine events, never from the
state) signs an in-toto Statement v1 in a DSSE envelope with the deploy's key (``HELLO_EVIDENCE_KEY_FILE``) and
pushes it to the image's repository as an OCI artifact tagged ``sha256-<hex>.verified-<stack>``. Promotion
fetches that tag and trusts it only when it verifies with the public key (``HELLO_EVIDENCE_PUBLIC_KEY_FILE``)
and names the digest and the stack: whoever can write a stack's state or a pull request cannot forge it.

Ed25519: deterministic signatures (no per-signature nonce to get wrong), one fixed curve and hash (no
parameters to choose or downgrade), 32-byte keys that fit an environment secret.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from image_ref import ImageRef, parse_image_ref

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The DSSE payload type of an in-toto statement."""
PREDICATE_TYPE = "https://hello-pulumi.local/verification/v1"
"""Ours: the predicate says in which stack, when and how the image's verification passed."""
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
ARTIFACT_TYPE = "application/vnd.in-toto+json"
KEY_VARIABLE = "HELLO_EVIDENCE_KEY_FILE"
"""The private key the deploy jobs sign with (PEM, PKCS#8, Ed25519), mode 0600."""
PUBLIC_KEY_VARIABLE = "HELLO_EVIDENCE_PUBLIC_KEY_FILE"
"""The public key promotion trusts (PEM, SubjectPublicKeyInfo, Ed25519)."""
JOB_TYPE = "kubernetes:batch/v1:Job"
CHECKER_CONTAINER = "verify"
IMAGE_UNDER_TEST = "IMAGE_UNDER_TEST"
"""The verification Job's environment variable naming the image it checks (the checker runs another image)."""
MAX_ENVELOPE_BYTES = 64 * 1024
_RAN = ("create", "replace", "create-replacement")
"""The steps of an up that ran the verification Job anew."""
_TAG_STACK_CHARS = 40
"""Longest stack name kept whole in a tag (a tag holds 128 characters); a longer one is cut and hashed."""


class EvidenceError(Exception):
    """Verification evidence could not be made, stored, found or trusted."""


class EvidenceKeyError(EvidenceError):
    """A key file is missing, readable by others, or not an Ed25519 key."""


class EvidenceMissingError(EvidenceError):
    """The registry holds no evidence for the digest and stack."""


class EvidenceUnavailableError(EvidenceError):
    """The registry could not be asked for the evidence, or answered what is not evidence."""


class MalformedEvidenceError(EvidenceError):
    """The evidence is not a DSSE envelope holding an in-toto statement of ours."""


class EvidenceSignatureError(EvidenceError):
    """No signature of the envelope verifies with the trusted public key."""


class EvidenceMismatchError(EvidenceError):
    """The evidence is genuine but about another digest or another stack."""


@dataclass(frozen=True, kw_only=True)
class PassedCheck:
    """What the verification Job of one up checked, and that it passed, from that up's engine events."""

    image: str
    """The image under test, pinned by digest."""
    url: str
    status: int
    body: str


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """A verified statement: ``image`` passed verification in ``stack`` at ``at``."""

    image: ImageRef
    stack: str
    at: str
    commit: str
    tag: str


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed, binding the payload to its type."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def evidence_tag(digest: str, stack: str) -> str:
    """The tag the evidence for ``digest`` in ``stack`` is stored under, beside the image."""
    if len(stack) > _TAG_STACK_CHARS:
        stack = f"{stack[: _TAG_STACK_CHARS - 17]}-{hashlib.sha256(stack.encode()).hexdigest()[:16]}"
    return f"{digest.replace(':', '-')}.verified-{stack}"


def statement(image: ImageRef, stack: str, check: PassedCheck, commit: str, at: str) -> dict[str, Any]:
    """The in-toto Statement v1: the image (its name and sha256 digest) passed ``check`` in ``stack`` at ``at``."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{image.registry}/{image.repository}", "digest": {"sha256": image.digest[7:]}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "stack": stack,
            "verifiedAt": at,
            "check": {"url": check.url, "status": check.status, "body": check.body},
            "commit": commit,
        },
    }


def key_id(public_key: Ed25519PublicKey) -> str:
    """A hint naming the key (sha256 of its raw bytes); never trusted, only shown."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(document: Mapping[str, Any], key: Ed25519PrivateKey) -> bytes:
    """A DSSE envelope (JSON) holding ``document`` as its payload, signed with ``key``."""
    payload = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }
    return json.dumps(envelope, sort_keys=True).encode()


def open_envelope(raw: bytes, trusted: Ed25519PublicKey, *, image: ImageRef, stack: str, tag: str = "") -> Evidence:
    """The evidence in ``raw``, once its signature verifies with ``trusted`` and it names ``image``'s digest
    and ``stack``.

    Raises:
        MalformedEvidenceError: When ``raw`` is not a DSSE envelope of an in-toto statement of ours.
        EvidenceSignatureError: When no signature verifies with ``trusted``.
        EvidenceMismatchError: When it is about another digest, image or stack.
    """
    where = f"the evidence {tag}" if tag else "the evidence"
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise MalformedEvidenceError(f"{where} must be at most {MAX_ENVELOPE_BYTES} bytes, got {len(raw)}")
    try:
        envelope = json.loads(raw)
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(entry["sig"], validate=True) for entry in envelope["signatures"]]
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise MalformedEvidenceError(
            f"{where} must be a DSSE envelope (JSON with payloadType, payload, signatures): {type(error).__name__}"
        ) from error
    if payload_type != PAYLOAD_TYPE:
        raise MalformedEvidenceError(f"{where} must have payloadType {PAYLOAD_TYPE}, got {str(payload_type)[:80]!r}")
    if not any(_verifies(trusted, signature, pae(payload_type, payload)) for signature in signatures):
        raise EvidenceSignatureError(
            f"{where} must be signed by the trusted key {key_id(trusted)[:16]} ({PUBLIC_KEY_VARIABLE}), got "
            f"{len(signatures)} signature(s), none by it: it was forged, tampered with, or signed with another key"
        )
    try:
        document = json.loads(payload)
        subjects = [(entry["name"], entry["digest"]["sha256"]) for entry in document["subject"]]
        predicate = document["predicate"]
        found = (document["_type"], document["predicateType"], predicate["stack"])
        at, commit = str(predicate["verifiedAt"]), str(predicate["commit"])
    except (ValueError, KeyError, TypeError) as error:
        raise MalformedEvidenceError(f"{where} must hold an in-toto statement: {type(error).__name__}") from error
    if found[:2] != (STATEMENT_TYPE, PREDICATE_TYPE):
        raise MalformedEvidenceError(
            f"{where} must be a {STATEMENT_TYPE} with predicateType {PREDICATE_TYPE}, got {found[0]!r}, {found[1]!r}"
        )
    name = f"{image.registry}/{image.repository}"
    if (name, image.digest[7:]) not in subjects:
        got = ", ".join(f"{subject}@sha256:{digest}" for subject, digest in subjects)
        raise EvidenceMismatchError(f"{where} must be about {image}, got {got or 'no subject'}")
    if found[2] != stack:
        raise EvidenceMismatchError(f"{where} must be about stack {stack!r}, got stack {found[2]!r}")
    return Evidence(image=image, stack=stack, at=at, commit=commit, tag=tag)


def _verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _key_path(variable: str, environ: Mapping[str, str]) -> Path:
    value = environ.get(variable)
    if not value:
        raise EvidenceKeyError(
            f"{variable} must name a key file (the local platform makes one: `make platform`; "
            "docs/security.md says how a team sets its own), got nothing"
        )
    return Path(value)


def signing_key(environ: Mapping[str, str] = os.environ) -> Ed25519PrivateKey:
    """The deploy's signing key, from ``HELLO_EVIDENCE_KEY_FILE``.

    Raises:
        EvidenceKeyError: When the file is missing, readable by group or others, or not an Ed25519 private key.
    """
    path = _key_path(KEY_VARIABLE, environ)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise EvidenceKeyError(f"{KEY_VARIABLE} {path} must be private (0600), got {stat.filemode(mode)}")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise EvidenceKeyError(f"{KEY_VARIABLE} {path} must be a readable key file, got {error.strerror}") from error
    except (ValueError, TypeError) as error:
        raise EvidenceKeyError(f"{KEY_VARIABLE} {path} must be a PEM private key without a password") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceKeyError(f"{KEY_VARIABLE} {path} must be an Ed25519 key, got {type(key).__name__}")
    return key


def trusted_key(environ: Mapping[str, str] = os.environ) -> Ed25519PublicKey:
    """The public key evidence must verify with, from ``HELLO_EVIDENCE_PUBLIC_KEY_FILE``.

    Raises:
        EvidenceKeyError: When the file is missing or not an Ed25519 public key.
    """
    path = _key_path(PUBLIC_KEY_VARIABLE, environ)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise EvidenceKeyError(
            f"{PUBLIC_KEY_VARIABLE} {path} must be a readable key file, got {error.strerror}"
        ) from error
    except ValueError as error:
        raise EvidenceKeyError(f"{PUBLIC_KEY_VARIABLE} {path} must be a PEM public key") from error
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceKeyError(f"{PUBLIC_KEY_VARIABLE} {path} must be an Ed25519 key, got {type(key).__name__}")
    return key


def passed_check(events: Iterable[Any]) -> PassedCheck | None:
    """The verification Job this up ran and that passed, from the up's engine events; None when it ran none.

    An up that left the Job as it was (nothing changed) ran no check, and proves nothing new.
    """
    for event in events:
        outputs_event = getattr(event, "res_outputs_event", None)
        metadata = getattr(outputs_event, "metadata", None)
        if metadata is None or metadata.type != JOB_TYPE or metadata.new is None:
            continue
        if str(getattr(metadata.op, "value", metadata.op)) not in _RAN:
            continue
        outputs = metadata.new.outputs or {}
        if not (outputs.get("status") or {}).get("succeeded"):
            continue
        containers = ((outputs.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
        for container in containers:
            if container.get("name") != CHECKER_CONTAINER:
                continue
            env = {item.get("name"): item.get("value") for item in container.get("env") or []}
            if env.get(IMAGE_UNDER_TEST) and env.get("TARGET"):
                return PassedCheck(
                    image=str(env[IMAGE_UNDER_TEST]),
                    url=str(env["TARGET"]),
                    status=int(env.get("EXPECT_STATUS") or 0),
                    body=str(env.get("EXPECT_BODY") or ""),
                )
    return None


def git_commit(directory: Path) -> str:
    """The checkout's commit, short, or ``unknown``."""
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=directory, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def record(
    registry: Any, image: ImageRef, stack: str, check: PassedCheck, commit: str, environ: Mapping[str, str] = os.environ
) -> str:
    """Signs "``image`` passed ``check`` in ``stack`` now" and stores it beside the image.

    Args:
        registry: The image's registry (ops.registry.Registry), with credentials that may push there.

    Returns:
        Where the evidence is: ``<registry>/<repository>:<tag>``.

    Raises:
        EvidenceKeyError: When there is no usable signing key.
        EvidenceUnavailableError: When the registry does not store it.
    """
    from ops.registry import Artifact, RegistryError

    envelope = sign(statement(image, stack, check, commit, now()), signing_key(environ))
    tag = evidence_tag(image.digest, stack)
    artifact = Artifact(
        artifact_type=ARTIFACT_TYPE,
        media_type=ENVELOPE_MEDIA_TYPE,
        content=envelope,
        annotations={"hello-pulumi.stack": stack, "hello-pulumi.subject": image.digest},
    )
    try:
        registry.push_artifact(image.repository, tag, artifact)
    except RegistryError as error:
        raise EvidenceUnavailableError(f"cannot store the evidence for {image} in stack {stack!r}: {error}") from error
    return f"{image.registry}/{image.repository}:{tag}"


def require(registry: Any, image: ImageRef, stack: str, environ: Mapping[str, str] = os.environ) -> Evidence:
    """The evidence that ``image`` passed verification in ``stack``, fetched beside the image and verified.

    Raises:
        EvidenceKeyError: When there is no trusted public key.
        EvidenceMissingError: When there is none.
        EvidenceUnavailableError: When the registry cannot be asked or answers what is not evidence.
        MalformedEvidenceError, EvidenceSignatureError, EvidenceMismatchError: When it is not to be trusted.
    """
    from ops.registry import RegistryError

    trusted = trusted_key(environ)
    tag = evidence_tag(image.digest, stack)
    where = f"{image.registry}/{image.repository}:{tag}"
    try:
        artifact = registry.fetch_artifact(image.repository, tag, ARTIFACT_TYPE)
    except RegistryError as error:
        raise EvidenceUnavailableError(f"cannot read the verification evidence {where}: {error}") from error
    if artifact is None:
        raise EvidenceMissingError(
            f"{image.digest} must have passed verification in stack {stack!r}, got no signed evidence of it "
            f"(looked for {where}); deploy that image on {stack} (`make up STACK={stack}`, or promote it there) "
            "until its verification passes, which signs the evidence"
        )
    if artifact.media_type != ENVELOPE_MEDIA_TYPE:
        raise MalformedEvidenceError(
            f"the evidence {where} must be a {ENVELOPE_MEDIA_TYPE}, got {artifact.media_type[:80]!r}"
        )
    return open_envelope(artifact.content, trusted, image=image, stack=stack, tag=where)


def doubts(registry_for: Callable[[ImageRef], Any], stack: str) -> Callable[[str], str | None]:
    """What a rollback asks before it deploys the image a state names as verified: why that image, in ``stack``,
    has no trusted evidence of its verification (None when it has), since whoever can write the state can name
    any image there.

    Args:
        registry_for: The image's registry, with the credentials the stack pulls with.
    """
    from ops.registry import RegistryError

    def doubt(reference: str) -> str | None:
        image = parse_image_ref(reference)
        if not isinstance(image, ImageRef):
            return f"{reference} is not an image pinned by digest"
        try:
            require(registry_for(image), image, stack)
        except (EvidenceError, RegistryError) as error:
            return str(error)
        return None

    return doubt


def record_after_up(
    events: Iterable[Any],
    stack: str,
    registry_for: Callable[[ImageRef], Any],
    work_dir: Path,
    say: Callable[[str], None],
    expected: ImageRef | None = None,
) -> None:
    """After a successful up of ``stack`` whose verification Job ran and passed (its ``events`` say so, not the
    state), signs that and stores it beside the image; says where, or why not.

    The deploy stands either way: evidence that cannot be made is said, and promotion from this stack then
    refuses the image until a deploy records it.

    Args:
        registry_for: The image's registry, with the credentials that may push there.
        expected: The image the up was to verify (a promotion's); a check of another image records nothing.
    """
    from ops.registry import RegistryError

    check = passed_check(events)
    if check is None:
        return
    image = parse_image_ref(check.image)
    if not isinstance(image, ImageRef) or (expected is not None and image != expected):
        want = "an image pinned by digest" if expected is None else str(expected)
        say(
            f"warning: stack {stack!r}'s verification must have checked {want}, got {check.image}: no evidence recorded"
        )
        return
    try:
        where = record(registry_for(image), image, stack, check, git_commit(work_dir))
    except (EvidenceError, RegistryError) as error:
        say(
            f"warning: {image} passed verification in stack {stack!r}, but no evidence of it was recorded "
            f"({error}); promotion from {stack} will refuse this digest until a deploy records it"
        )
        return
    say(f"Verification evidence for {image.digest} in stack {stack!r}: signed, stored as {where}")
