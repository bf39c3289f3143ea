"""AWS Signature Version 4 verification, by recomputing the signature with botocore's own signer.

The incoming request is rebuilt as a botocore `AWSRequest` holding exactly the headers the client signed, the
signature is recomputed with `botocore.auth.SigV4Auth` for the claimed key's secret and compared with
`hmac.compare_digest`. Header-level checks (`precheck`) run before the body is read, so an unsigned or
unknown-key request never gets its body buffered. Errors are the ones AWS's JSON services answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from facelens.api.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "rekognition"
MAX_SKEW = dt.timedelta(minutes=15)
SIGNED_PREFIXES = ("x-amz-", "x-facelens-")
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.")


@dataclass(frozen=True)
class Authorization:
    """The parts of a SigV4 `Authorization` header, and the request time it was signed for."""

    access_key: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # YYYYMMDDTHHMMSSZ


def _fields(value: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if sep:
            fields[key.strip()] = item.strip()
    return fields


def _timestamp(headers: Mapping[str, str]) -> str:
    """The request time as SigV4's basic ISO-8601 form, from X-Amz-Date or else Date."""
    if "x-amz-date" in headers:
        raw = headers["x-amz-date"]
        try:
            dt.datetime.strptime(raw, SIGV4_TIMESTAMP)
        except ValueError:
            raise IncompleteSignatureException(f"Date must be in ISO-8601 'basic format'. Got '{raw[:40]}'.") from None
        return raw
    if "date" in headers:
        try:
            parsed = parsedate_to_datetime(headers["date"])
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return parsed.astimezone(dt.UTC).strftime(SIGV4_TIMESTAMP)
    raise IncompleteSignatureException(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def must_be_signed(name: str) -> bool:
    """Whether a header (lower-case name) can change what a request means, so it must be signed to count:
    every `x-amz-*` (the operation, the date, the payload hash) and `x-facelens-*` header (the purpose), and
    Content-Type."""
    return name.startswith(SIGNED_PREFIXES) or name == "content-type"


def parse_authorization(headers: Mapping[str, str]) -> Authorization:
    """The Authorization header's parts (header names lower-case), or the error AWS gives."""
    header = headers.get("authorization")
    if not header:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(f"Unsupported AWS 'algorithm': '{algorithm[:40]}'.")
    fields = _fields(rest)
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise IncompleteSignatureException(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise IncompleteSignatureException(
            "Credential should be scoped to a valid region, service and terminator: "
            "<key>/<YYYYMMDD>/<region>/<service>/aws4_request."
        )
    key, date, region, service, terminator = scope
    if terminator != "aws4_request":
        raise InvalidSignatureException(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator[:40]}'."
        )
    signed = tuple(name.strip().lower() for name in fields["SignedHeaders"].split(";"))
    if "host" not in signed:
        raise IncompleteSignatureException("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    unsigned = sorted({name for name in headers if must_be_signed(name) and name not in signed})
    if unsigned:
        raise InvalidSignatureException(
            "There were headers present in the request which were not signed: " + ", ".join(unsigned)[:200]
        )
    return Authorization(key, date, region, service, signed, fields["Signature"], _timestamp(headers))


class _Recomputer(SigV4Auth):
    """botocore's SigV4 signer, signing exactly the headers the rebuilt request holds (the client's list)."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


class SigV4Verifier:
    """Verifies SigV4-signed requests against a fixed set of access keys."""

    def __init__(self, keys: Mapping[str, str], region: str | None = None, max_skew: dt.timedelta = MAX_SKEW,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self._keys = dict(keys)
        self.region = region
        self.max_skew = max_skew
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def precheck(self, headers: Mapping[str, str]) -> Authorization:
        """Everything that needs no body: header syntax, known key, scope, clock skew."""
        auth = parse_authorization(headers)
        if auth.access_key not in self._keys or "x-amz-security-token" in headers:  # FaceLens issues no tokens
            raise UnrecognizedClientException("The security token included in the request is invalid.")
        if auth.service != SERVICE:
            raise InvalidSignatureException(f"Credential should be scoped to correct service: '{SERVICE}'.")
        if self.region is not None and auth.region != self.region:
            raise InvalidSignatureException("Credential should be scoped to a valid region.")
        if auth.scope_date != auth.timestamp[:8]:
            raise InvalidSignatureException(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{auth.scope_date[:8]}' != '{auth.timestamp[:8]}', from '{auth.timestamp}'."
            )
        self._check_clock(auth.timestamp)
        return auth

    def _check_clock(self, timestamp: str) -> None:
        signed_at = dt.datetime.strptime(timestamp, SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
        now = self._clock()
        fmt = SIGV4_TIMESTAMP
        minutes = int(self.max_skew.total_seconds() // 60)
        if signed_at < now - self.max_skew:
            raise InvalidSignatureException(
                f"Signature expired: {timestamp} is now earlier than {(now - self.max_skew).strftime(fmt)} "
                f"({now.strftime(fmt)} - {minutes} min.)"
            )
        if signed_at > now + self.max_skew:
            raise InvalidSignatureException(
                f"Signature not yet current: {timestamp} is still later than {(now + self.max_skew).strftime(fmt)} "
                f"({now.strftime(fmt)} + {minutes} min.)"
            )

    def verify(self, auth: Authorization, method: str, path: str, query: str,
               headers: Sequence[tuple[str, str]], body: bytes) -> str:
        """Check the signature over the whole request; returns the access key id. Header values arrive as
        latin-1 text (how Python and Node clients put text on the wire); a client that sent UTF-8 bytes signed
        their UTF-8 reading, so a non-ASCII request is also tried that way."""
        signed = [(name.lower(), value) for name, value in headers if name.lower() in auth.signed_headers]
        if {name for name, _ in signed} != set(auth.signed_headers):
            raise InvalidSignatureException(MISMATCH)
        content_sha = dict(signed).get("x-amz-content-sha256")
        if content_sha is not None and not hmac.compare_digest(
            content_sha.encode(), hashlib.sha256(body).hexdigest().encode()
        ):
            raise InvalidSignatureException("The provided 'x-amz-content-sha256' header does not match the body.")
        readings = [signed]
        if not all(value.isascii() for _, value in signed):
            with contextlib.suppress(UnicodeError):
                readings.append([(name, value.encode("latin-1").decode("utf-8")) for name, value in signed])
        url = f"http://signed{path}" + (f"?{query}" if query else "")
        for reading in readings:
            request = AWSRequest(method=method, url=url, data=body)
            for name, value in reading:
                request.headers[name] = value  # appends: a repeated header is signed as all its values
            if self._matches(auth, request):
                return auth.access_key
        raise InvalidSignatureException(MISMATCH)

    def _matches(self, auth: Authorization, request: AWSRequest) -> bool:
        request.context["timestamp"] = auth.timestamp
        signer = _Recomputer(Credentials(auth.access_key, self._keys[auth.access_key]), auth.service, auth.region)
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        return hmac.compare_digest(expected.encode(), auth.signature.encode("utf-8", "replace"))
