"""Access keys the service accepts: FACELENS_ACCESS_KEYS, else `<data dir>/credentials`, else a generated pair.

The credentials file uses the AWS CLI's INI layout, so it can be copied into `~/.aws/credentials` as is:

    [facelens]
    aws_access_key_id = FLK...
    aws_secret_access_key = ...

Several sections give several keys. A section may scope its key (FaceLens's own settings, ignored by the CLI):

    facelens_admin = true                      # may set collection policies and read the audit log
    facelens_read_only = true                  # searches, lists and describes only
    facelens_collections = missing-persons, staff
    facelens_operations = SearchFacesByImage, DescribeCollection

Keys given in FACELENS_ACCESS_KEYS are unscoped; FACELENS_ADMIN_KEYS names those of them that are admin keys.
A generated file is created with mode 0600, holds one admin key, and its key is printed once, at the start that
creates it. Secrets never reach a log.
"""

from __future__ import annotations

import configparser
import logging
import os
import secrets
import stat
import string
import sys
from collections.abc import Callable
from pathlib import Path

from facelens.config import ConfigError
from facelens.context import KeyScope

log = logging.getLogger("facelens.api")

FILE_NAME = "credentials"
_KEY_ALPHABET = string.ascii_uppercase + string.digits


def parse_access_keys(text: str) -> dict[str, str]:
    """`KEYID:SECRET[,KEYID:SECRET]` -> {key id: secret}."""
    keys: dict[str, str] = {}
    for index, item in enumerate(part.strip() for part in text.split(",")):
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id.strip() or not secret:
            raise ConfigError(f"FACELENS_ACCESS_KEYS entry {index + 1} is not KEYID:SECRET")
        keys[key_id.strip()] = secret
    return keys


def read_credentials_file(path: Path) -> dict[str, str]:
    """{key id: secret} from every section of an AWS-style credentials file."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc.__class__.__name__}") from None
    keys = {
        parser[section]["aws_access_key_id"].strip(): parser[section]["aws_secret_access_key"].strip()
        for section in parser.sections()
        if parser[section].get("aws_access_key_id") and parser[section].get("aws_secret_access_key")
    }
    if not keys:
        raise ConfigError(f"credentials file {path} holds no aws_access_key_id / aws_secret_access_key pair")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("credentials file %s is readable by other users; chmod 600 it", path)
    return keys


def generate_key() -> tuple[str, str]:
    """A new (key id, secret): 20 upper-case characters, and 40 URL-safe characters."""
    key_id = "FLK" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(17))
    return key_id, secrets.token_urlsafe(30)


def _announce(path: Path, key_id: str, secret: str) -> None:
    print(
        f"FaceLens generated an access key and stored it in {path} (mode 0600). It is shown only this once:\n"
        f"  aws_access_key_id     = {key_id}\n"
        f"  aws_secret_access_key = {secret}",
        file=sys.stderr,
        flush=True,
    )


def create_credentials_file(path: Path, announce: Callable[[Path, str, str], None] = _announce) -> dict[str, str]:
    """Generate a key pair into a new 0600 file; if another process created it first, read theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key_id, secret = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_credentials_file(path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"[facelens]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
                     "facelens_admin = true\n")
    announce(path, key_id, secret)
    return {key_id: secret}


def load_access_keys(access_keys: str | None, data_dir: Path,
                     announce: Callable[[Path, str, str], None] = _announce) -> dict[str, str]:
    """The keys the service accepts, by precedence: environment, credentials file, newly generated pair."""
    if access_keys:
        return parse_access_keys(access_keys)
    path = data_dir / FILE_NAME
    if path.exists():
        return read_credentials_file(path)
    return create_credentials_file(path, announce)


def _names(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def load_key_scopes(access_keys: str | None, data_dir: Path, admin_keys: str | None = None) -> dict[str, KeyScope]:
    """What each key may do: scopes from the credentials file's sections, admin rights from FACELENS_ADMIN_KEYS
    for keys given in the environment. Keys not named are unscoped, non-admin."""
    scopes: dict[str, KeyScope] = {}
    path = data_dir / FILE_NAME
    if not access_keys and path.exists():
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
        for section in parser.sections():
            fields = parser[section]
            key_id = (fields.get("aws_access_key_id") or "").strip()
            if key_id:
                scopes[key_id] = KeyScope(collections=_names(fields.get("facelens_collections")),
                                          operations=_names(fields.get("facelens_operations")),
                                          read_only=_true(fields.get("facelens_read_only")),
                                          admin=_true(fields.get("facelens_admin")))
    for key_id in _names(admin_keys) or ():
        scopes[key_id] = KeyScope(admin=True)
    return scopes
