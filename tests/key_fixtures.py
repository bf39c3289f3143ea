"""The access keys the integration tests give a real `facelens serve`, and the credentials file that declares them
(the format `facelens.api.credentials` reads: one INI section per key, its scope in `facelens_*` options).

One table of keys, so a test file names the keys it needs and their scopes instead of writing the file out."""

from __future__ import annotations

from pathlib import Path

Key = tuple[str, str]  # (access key id, secret), as `tests.service_fixtures.client(url, *key)` takes it

ADMIN: Key = ("FLKADMIN000000000001", "admin-secret")
READER: Key = ("FLKREADER00000000002", "reader-secret")
SCOPED: Key = ("FLKSCOPED00000000003", "scoped-secret")
PLAIN: Key = ("FLKPLAIN000000000004", "plain-secret")


def profile(name: str, key: Key, **scope: str) -> str:
    """One section of a credentials file: `[name]`, the key, then each `facelens_*` scope option as given."""
    lines = [f"[{name}]", f"aws_access_key_id = {key[0]}", f"aws_secret_access_key = {key[1]}"]
    return "\n".join([*lines, *(f"{option} = {value}" for option, value in scope.items())]) + "\n"


def admin(key: Key = ADMIN) -> str:
    return profile("admin", key, facelens_admin="true")


def reader(key: Key = READER) -> str:
    return profile("reader", key, facelens_read_only="true")


def scoped(collections: str, operations: str | None = None, key: Key = SCOPED) -> str:
    """The `scoped` key: limited to `collections` (comma-separated) and, when given, to `operations`."""
    scope = {"facelens_collections": collections} | ({"facelens_operations": operations} if operations else {})
    return profile("scoped", key, **scope)


def plain(key: Key = PLAIN) -> str:
    """A key with no scope options: every operation, every collection, not admin."""
    return profile("plain", key)


def credentials_file(*profiles: str) -> str:
    """The text of a credentials file holding `profiles` (from `profile`, `admin`, ...), one blank line apart."""
    return "\n".join(profiles)


def write_credentials(data_dir: Path, text: str) -> Path:
    """`text` as `data_dir`/credentials, readable by its owner only (the server refuses a wider mode)."""
    path = data_dir / "credentials"
    path.write_text(text)
    path.chmod(0o600)
    return path
