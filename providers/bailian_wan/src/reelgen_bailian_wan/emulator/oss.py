"""The two OSS buckets the service uses, emulated on the emulator's own port.

* `dashscope-file-mgr`: temporary inputs. `GET /uploads?action=getPolicy` hands out a
  signed POST policy (reference §2.5); the SDK posts the 9-field form to
  `upload_host`, then sends `oss://<key>`. Objects live 48 h and are bound to the
  model the policy was issued for.
* `dashscope-result-bj`: result videos, served through signed URLs shaped like the
  real ones (`?Expires=<epoch>&OSSAccessKeyId=...&Signature=...`, OSS V1 signing)
  that expire after `url_ttl_seconds`.

Errors are OSS's XML errors (`AccessDenied`, `SignatureDoesNotMatch`, ...), not
DashScope JSON: the SDK reads them as text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from pathlib import Path
from urllib.parse import quote, unquote

import attrs

from .clock import Clock
from .config import EmulatorConfig
from .errors import OssError

__all__ = ["OssBuckets", "parse_multipart"]

UPLOAD_BUCKET = "dashscope-file-mgr"
RESULT_BUCKET = "dashscope-result-bj"
ACCESS_KEY_ID = "LTAI5tDashScopeEmulator"
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024  # the captured policy's content-length-range
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)


@attrs.define
class _Upload:
    data: bytes
    content_type: str
    model: str
    uploaded_at: float


@attrs.define
class _Result:
    path: Path
    created_at: float
    expires_early: bool


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """`multipart/form-data` fields: name -> (value bytes, filename or None)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or not match:
        raise OssError(
            400, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data."
        )
    delimiter = b"--" + match.group(1).encode()
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, _, content = part.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
        field = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if field:
            fields[field.group(1)] = (content, filename.group(1) if filename else None)
    return fields


class OssBuckets:
    def __init__(self, clock: Clock, config: EmulatorConfig) -> None:
        self.clock = clock
        self.config = config
        self.origin = ""  # set once the server is bound, e.g. "http://127.0.0.1:8080"
        self._secret = secrets.token_bytes(20)
        # One emulator is one account: uploads live under this account's directory.
        self._account = hashlib.md5(self._secret).hexdigest()
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}
        self._results: dict[str, _Result] = {}
        self._policy_models: dict[str, str] = {}

    def reset(self) -> None:
        with self._lock:
            self._uploads.clear()
            self._results.clear()
            self._policy_models.clear()

    @property
    def upload_host(self) -> str:
        return f"{self.origin}/oss/{UPLOAD_BUCKET}"

    def _sign(self, text: str) -> str:
        digest = hmac.new(self._secret, text.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    # -- temporary inputs ------------------------------------------------------

    def policy(self, model: str) -> dict[str, object]:
        """The `data` of a getPolicy reply, as captured (reference §2.5)."""
        now = self.clock.now()
        day = self.clock.local(now).strftime("%Y-%m-%d")
        upload_dir = f"dashscope-instant/{self._account}/{day}/{uuid.uuid4()}"
        document = {
            "expiration": Clock.iso_utc(now + self.config.policy_ttl_seconds),
            "conditions": [
                ["content-length-range", 0, MAX_UPLOAD_BYTES],
                ["starts-with", "$key", upload_dir],
                {"bucket": UPLOAD_BUCKET},
                {"x-oss-object-acl": "private"},
                {"x-oss-forbid-overwrite": "true"},
            ],
        }
        with self._lock:
            # Uploads are bound to the model the policy was issued for (reference §2.5).
            self._policy_models[upload_dir] = model
        policy = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
        return {
            "policy": policy,
            "signature": self._sign(policy),
            "upload_dir": upload_dir,
            "upload_host": self.upload_host,
            "expire_in_seconds": int(self.config.policy_ttl_seconds),
            "max_file_size_mb": MAX_UPLOAD_BYTES // (1024 * 1024),
            "capacity_limit_mb": 999999999,
            "oss_access_key_id": ACCESS_KEY_ID,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }

    def upload(self, content_type: str, body: bytes) -> tuple[int, str]:
        """Handle a PostObject form. Returns (status, ETag) or raises `OssError`."""
        fields = parse_multipart(content_type, body)

        def text(name: str) -> str | None:
            value = fields.get(name)
            return None if value is None else value[0].decode("utf-8", "replace")

        if "file" not in fields or text("key") is None:
            raise OssError(
                400, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data."
            )
        if text("OSSAccessKeyId") is None or text("policy") is None or text("Signature") is None:
            raise OssError(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
        if text("OSSAccessKeyId") != ACCESS_KEY_ID:
            raise OssError(
                403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records."
            )
        policy = text("policy") or ""
        if not hmac.compare_digest(self._sign(policy), text("Signature") or ""):
            raise OssError(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        document = json.loads(base64.b64decode(policy))
        if Clock.iso_parse(document["expiration"]) < self.clock.now():
            raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = text("key") or ""
        data = fields["file"][0]
        model = ""
        for condition in document["conditions"]:
            if isinstance(condition, list) and condition[0] == "content-length-range":
                if not condition[1] <= len(data) <= condition[2]:
                    raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
            elif isinstance(condition, list) and condition[0] == "starts-with":
                if not key.startswith(condition[2]):
                    failed = f'["starts-with", "$key", "{condition[2]}"]'
                    raise OssError(
                        403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {failed}"
                    )
                with self._lock:
                    model = self._policy_models.get(condition[2], "")
            elif isinstance(condition, dict):
                ((name, expected),) = condition.items()
                if name != "bucket" and text(name) != expected:
                    raise OssError(
                        403,
                        "AccessDenied",
                        f'Invalid according to Policy: Policy Condition failed: ["eq", "${name}", "{expected}"]',
                    )
        with self._lock:
            if key in self._uploads and text("x-oss-forbid-overwrite") == "true":
                raise OssError(
                    409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten."
                )
            self._uploads[key] = _Upload(
                data=data,
                content_type=text("x-oss-content-type") or "application/octet-stream",
                model=model,
                uploaded_at=self.clock.now(),
            )
        status = text("success_action_status")
        return (int(status) if status in ("200", "201") else 204), hashlib.md5(data).hexdigest().upper()

    def lookup(self, key: str, model: str) -> bytes | None:
        """The bytes behind `oss://<key>` for `model`, or None (missing, expired, other model)."""
        with self._lock:
            upload = self._uploads.get(key)
        if upload is None or upload.model != model:
            return None
        if self.clock.now() - upload.uploaded_at > self.config.upload_ttl_seconds:
            return None
        return upload.data

    # -- result videos ---------------------------------------------------------

    def publish(self, path: Path, *, at: float, expires_early: bool = False) -> tuple[str, float]:
        """Store a result file finished `at`; return its signed URL and when it expires."""
        now = at
        day = self.clock.local(now).strftime("%Y%m%d")
        name = uuid.uuid4().hex
        key = f"1d/{name[:2]}/{day}/{name}.mp4"
        expires = int(now + self.config.url_ttl_seconds)
        with self._lock:
            self._results[key] = _Result(path=path, created_at=now, expires_early=expires_early)
        signature = quote(self._sign(f"GET\n\n\n{expires}\n/{RESULT_BUCKET}/{key}"), safe="")
        url = (
            f"{self.origin}/oss/{RESULT_BUCKET}/{key}"
            f"?Expires={expires}&OSSAccessKeyId={ACCESS_KEY_ID}&Signature={signature}"
        )
        return url, float(expires)

    def open_result(self, key: str, query: dict[str, str]) -> Path:
        """Check a signed GET for `key`; the file to serve, or raise `OssError`."""
        expires, access_key, signature = (
            query.get("Expires"),
            query.get("OSSAccessKeyId"),
            query.get("Signature"),
        )
        if not expires or not access_key or not signature:
            raise OssError(403, "AccessDenied", "You have no right to access this object because of bucket acl.")
        if access_key != ACCESS_KEY_ID:
            raise OssError(
                403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records."
            )
        now = self.clock.now()
        server_time = Clock.iso_utc(now)[:-5] + "Z"
        if not expires.isdigit() or int(expires) < now:
            raise OssError(403, "AccessDenied", "Request has expired.", Expires=expires, ServerTime=server_time)
        expected = self._sign(f"GET\n\n\n{expires}\n/{RESULT_BUCKET}/{unquote(key)}")
        if not hmac.compare_digest(expected, signature):
            raise OssError(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        with self._lock:
            result = self._results.get(unquote(key))
        if result is None or not result.path.exists():
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        if result.expires_early:
            raise OssError(403, "AccessDenied", "Request has expired.", Expires=expires, ServerTime=server_time)
        return result.path
