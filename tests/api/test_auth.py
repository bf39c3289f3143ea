"""SigV4 verification (against requests signed by botocore itself), access keys, and server settings."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from facelens.api import auth, credentials
from facelens.api.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from facelens.config import ConfigError, ServerSettings
from tests.service_fixtures import KEY_ID, SECRET, signed

URL = "http://127.0.0.1:8080"
BODY = b'{"Image": {"Bytes": "/9j/"}}'
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def verifier(**kwargs: object) -> auth.SigV4Verifier:
    return auth.SigV4Verifier({KEY_ID: SECRET}, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def check(headers: dict[str, str], body: bytes = BODY, url: str = URL, v: auth.SigV4Verifier | None = None) -> str:
    v = v or verifier()
    lower = {name.lower(): value for name, value in headers.items()}
    lower.setdefault("host", urlsplit(url).netloc)
    parts = urlsplit(url if url.endswith("/") or urlsplit(url).path else url + "/")
    authorization = v.precheck(lower)
    return v.verify(authorization, "POST", parts.path or "/", parts.query, list(lower.items()), body)


def request(body: bytes = BODY, when: dt.datetime = NOW, **kwargs: object) -> dict[str, str]:
    return signed(URL, "DetectFaces", body, when=when, **kwargs)[1]  # type: ignore[arg-type]


def test_a_botocore_signed_request_verifies() -> None:
    assert check(request()) == KEY_ID
    assert check(request(when=NOW - dt.timedelta(minutes=14))) == KEY_ID


def test_wrong_secret_tampered_body_or_header_do_not() -> None:
    with pytest.raises(InvalidSignatureException, match="signature we calculated does not match"):
        check(request(secret="wrong"))
    with pytest.raises(InvalidSignatureException):
        check(request(), body=BODY + b" ")
    headers = request()
    headers["X-Amz-Target"] = "RekognitionService.CompareFaces"
    with pytest.raises(InvalidSignatureException):
        check(headers)
    headers = request()
    headers["Authorization"] = headers["Authorization"][:-1] + ("0" if headers["Authorization"][-1] != "0" else "1")
    with pytest.raises(InvalidSignatureException):
        check(headers)


def test_unknown_key_and_missing_signature() -> None:
    with pytest.raises(UnrecognizedClientException, match="security token included in the request is invalid"):
        check(request(key_id="AKIDUNKNOWN"))
    headers = request()
    del headers["Authorization"]
    with pytest.raises(MissingAuthenticationTokenException):
        check(headers)


@pytest.mark.parametrize(("minutes", "message"), [(-16, "Signature expired"), (16, "Signature not yet current")])
def test_requests_dated_more_than_15_minutes_off(minutes: int, message: str) -> None:
    with pytest.raises(InvalidSignatureException, match=message):
        check(request(when=NOW + dt.timedelta(minutes=minutes)))


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), IncompleteSignatureException),
        (lambda a: a.split(", Signature=")[0], IncompleteSignatureException),
        (lambda a: a.replace("/rekognition/", "/s3/"), InvalidSignatureException),
        (lambda a: a.replace("/aws4_request", "/aws5_request"), InvalidSignatureException),
        (lambda a: a.replace("Credential=", "Credential=x/"), IncompleteSignatureException),
        (lambda a: a.replace("SignedHeaders=", "SignedHeaders=x-nope;"), InvalidSignatureException),
        (lambda a: a.replace("SignedHeaders=content-type;host;", "SignedHeaders=content-type;"),
         IncompleteSignatureException),
        (lambda a: a.replace("/20260301/", "/20260302/"), InvalidSignatureException),
    ],
)
def test_malformed_authorization_headers(edit, error) -> None:
    headers = request()
    headers["Authorization"] = edit(headers["Authorization"])
    with pytest.raises(error):
        check(headers)


def test_region_is_enforced_only_when_configured() -> None:
    assert check(request(), v=verifier(region="us-east-1")) == KEY_ID
    with pytest.raises(InvalidSignatureException, match="region"):
        check(request(), v=verifier(region="eu-west-1"))


def test_missing_date_and_payload_hash_header() -> None:
    headers = request()
    del headers["X-Amz-Date"]
    with pytest.raises(IncompleteSignatureException, match="X-Amz-Date"):
        check(headers)
    headers = request(headers={"X-Amz-Content-SHA256": "0" * 64})
    with pytest.raises(InvalidSignatureException, match="x-amz-content-sha256"):
        check(headers)


# -- access keys
def test_access_keys_from_the_environment() -> None:
    assert credentials.parse_access_keys("A:s1, B:s:2") == {"A": "s1", "B": "s:2"}
    for bad in ("A", "A:", ":s", "A:s,"):
        with pytest.raises(ConfigError):
            credentials.parse_access_keys(bad)


def test_first_start_generates_one_key_pair_0600_and_announces_it_once(tmp_path: Path) -> None:
    shown: list[tuple[str, str]] = []
    announce = lambda path, key, secret: shown.append((key, secret))  # noqa: E731
    keys = credentials.load_access_keys(None, tmp_path / "data", announce)
    path = tmp_path / "data" / credentials.FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(keys.items()) == shown and len(shown) == 1
    key_id, secret = shown[0]
    assert len(key_id) == 20 and len(secret) == 40
    assert credentials.load_access_keys(None, tmp_path / "data", announce) == keys
    assert len(shown) == 1
    assert credentials.load_access_keys("X:y", tmp_path / "data", announce) == {"X": "y"}


def test_credentials_file_in_aws_cli_layout(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[a]\naws_access_key_id = K1\naws_secret_access_key = S1\n[b]\naws_access_key_id = K2\n"
                    "aws_secret_access_key = S2\n")
    assert credentials.read_credentials_file(path) == {"K1": "S1", "K2": "S2"}
    path.write_text("[a]\nnothing = here\n")
    with pytest.raises(ConfigError):
        credentials.read_credentials_file(path)


# -- settings
def test_flags_override_environment_over_defaults(tmp_path: Path) -> None:
    defaults = ServerSettings.from_env({})
    assert (defaults.host, defaults.port, str(defaults.data_dir)) == ("127.0.0.1", 8080, "data")
    assert defaults.threads == 1 and defaults.workers >= 1
    env = {"FACELENS_HOST": "0.0.0.0", "FACELENS_PORT": "9000", "FACELENS_DATA_DIR": str(tmp_path),
           "FACELENS_WORKERS": "3", "FACELENS_S3_ENDPOINT_URL": "http://s3:9000"}
    settings = ServerSettings.from_env(env)
    assert (settings.host, settings.port, settings.data_dir, settings.workers) == ("0.0.0.0", 9000, tmp_path, 3)
    assert settings.s3.endpoint_url == "http://s3:9000"
    settings = ServerSettings.from_env(env, host="::1", port=None, data_dir="/srv/x")
    assert (settings.host, settings.port, str(settings.data_dir)) == ("::1", 9000, "/srv/x")
    for bad in ({"FACELENS_PORT": "http"}, {"FACELENS_PORT": "70000"}, {"FACELENS_WORKERS": "0"}):
        with pytest.raises(ConfigError):
            ServerSettings.from_env(bad)
    assert "secret" not in repr(ServerSettings.from_env({"FACELENS_ACCESS_KEYS": "K:secret"}))
