"""Where a video job's bytes come from: a file under the video directory (bucket `facelens-local`), or any file.

Invariant of `LocalVideo.open()`: the file handed on is the one checked. The name is opened first (following
links, as the operator's own links inside the folder may point elsewhere inside it), then the *opened descriptor*
is judged: it must be a regular file whose real path (the kernel's, `/proc/self/fd/N`; elsewhere the resolved
path, accepted only if it is the same inode as the descriptor) lies under the video directory's real path. So a
file swapped for a symlink after Start, or while its job waited in the queue or across a restart, is refused when
it is opened, and nothing outside the folder is ever read. Every open of a job (probe, then decode) is checked.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


class VideoError(Exception):
    """The video cannot be analysed; the message says why."""


class VideoMissing(VideoError):
    """The named file does not exist, or is not a regular file that can be read."""


class VideoOutside(VideoError):
    """The named file is (or, when opened, turned out to be) outside the video directory."""


class VideoSource(Protocol):
    """Something a video can be read from: `name` for messages, `open()` for a binary file (VideoError if not)."""

    @property
    def name(self) -> str: ...

    def open(self) -> BinaryIO: ...


def _open_regular(path: str, name: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of a regular file and its fstat; VideoMissing when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except ValueError:  # an embedded NUL
        raise VideoMissing(f"video name {name!r} is not a valid file name") from None
    except OSError as exc:
        raise VideoMissing(f"video file {name} not found ({exc.strerror or exc.__class__.__name__})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise VideoMissing(f"video file {name} is not a regular file")
    return fd, info


def _real_path(fd: int, path: str, info: os.stat_result) -> str | None:
    """The real path of what `fd` has open, or None when that cannot be told for certain."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
    except OSError:  # no /proc (not Linux): the resolved name counts only if it is the very inode we opened
        real = os.path.realpath(path)
        try:
            now = os.stat(real)
        except OSError:
            return None
        return real if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino) else None


@dataclass(frozen=True)
class LocalVideo:
    """`name` under the video directory `root`, checked on the opened descriptor each time it is opened."""

    root: Path
    name: str

    def open(self) -> BinaryIO:
        """The file, open for reading; VideoOutside if it is not under `root`, VideoMissing if there is none."""
        root = os.path.realpath(self.root)
        path = os.path.join(root, self.name)
        try:  # the name itself first: whether a file outside exists is not told
            outside = not Path(os.path.realpath(path)).is_relative_to(root)
        except ValueError:  # an embedded NUL
            raise VideoMissing(f"video name {self.name!r} is not a valid file name") from None
        if outside:
            raise VideoOutside(f"{self.name} is outside the video directory")
        fd, info = _open_regular(path, self.name)
        real = _real_path(fd, path, info)
        if real is None or not Path(real).is_relative_to(root):
            os.close(fd)
            raise VideoOutside(f"{self.name} is outside the video directory (a link out of it, or swapped for one)")
        return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class VideoFile:
    """Any file, by path (a downloaded S3 object, a clip the CLI or a test names)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def open(self) -> BinaryIO:
        fd, _ = _open_regular(str(self.path), self.path.name)
        return os.fdopen(fd, "rb")


def as_source(source: VideoSource | str | Path) -> VideoSource:
    """A path becomes a VideoFile; a source stays itself."""
    return VideoFile(Path(source)) if isinstance(source, str | Path) else source
