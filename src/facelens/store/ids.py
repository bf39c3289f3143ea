"""FaceIds whose order follows time, so the indexes keyed by them grow at one end.

`faces.face_id` is UNIQUE (a B-tree index) and `audit_faces` is keyed by (face_id, seq). With random (version 4)
UUIDs every insert lands on a random leaf of those trees: once they outgrow SQLite's page cache (2 MiB by
default) each face costs a page read, and each transaction of N faces dirties about N distinct leaf pages, each
written to the WAL and checkpointed back (docs/benchmarks.md measures it: the insert rate falls as the store
grows). A version 7 UUID (RFC 9562) begins with the Unix time in milliseconds, so a new FaceId sorts after
every older one and its index entry goes into the rightmost leaf, a page already cached and already dirty.

Invariants: the text matches Rekognition's FaceId pattern (lower-case 8-4-4-4-12 hex); 74 of its 128 bits are
random (`secrets`), so two ids collide with negligible probability even within one millisecond or across
replicas; ids made later by the same clock sort after those of earlier milliseconds (a clock stepped back only
costs locality, never uniqueness). The id reveals when the face was indexed, to the millisecond.
"""

from __future__ import annotations

import secrets
import time
import uuid

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62


def time_ordered_uuid(now_ns: int | None = None) -> str:
    """A version 7 UUID for the time `now_ns` (nanoseconds since the epoch; default: now), as text."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = secrets.randbits(74)
    value = ((ms & (2**48 - 1)) << 80) | _VERSION | ((rand >> 62) << 64) | _VARIANT | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))
