"""Search policy: the threshold floor a search is answered at, and the other limits a collection's owner sets.

A 1:N search of a collection of G faces for someone who is not in it returns a stranger with probability about
`G x FMR(threshold)`. FaceLens's Similarity is a decibel scale of the measured FMR (`20 + 10 * -log10 FMR`), so
the threshold that keeps that probability at `p` is exact arithmetic:

    floor(G, p) = 20 + 10 * log10(G / p)        (G = 25,000 faces, p = 1%: 84; G = 50: 57)

A search is answered at the largest of the request's threshold, `min_search_similarity` and `floor(G, p)`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from facelens.calibration import SIMILARITY_OFFSET, SIMILARITY_PER_DECADE, fmr_from_similarity

DEFAULT_MIN_SEARCH_SIMILARITY = 80.0
DEFAULT_MAX_FALSE_MATCH_PROBABILITY = 0.01
DEFAULT_MIN_COMPARE_SIMILARITY = 70.0
MAX_SIMILARITY = 100.0

# Policy member <-> the wire name of the admin API (PascalCase, as AWS's JSON APIs spell members).
WIRE_NAMES = {
    "min_search_similarity": "MinSearchSimilarity",
    "max_false_match_probability": "MaxFalseMatchProbability",
    "min_compare_similarity": "MinCompareSimilarity",
    "require_purpose": "RequirePurpose",
    "purpose_pattern": "PurposePattern",
    "max_results": "MaxResults",
    "retention_days": "RetentionDays",
    "require_review": "RequireReview",
    "keep_face_crops": "KeepFaceCrops",
}
ENVIRONMENT = {
    "min_search_similarity": "FACELENS_MIN_SEARCH_SIMILARITY",
    "max_false_match_probability": "FACELENS_MAX_FALSE_MATCH_PROBABILITY",
    "min_compare_similarity": "FACELENS_MIN_COMPARE_SIMILARITY",
    "require_purpose": "FACELENS_REQUIRE_PURPOSE",
    "purpose_pattern": "FACELENS_PURPOSE_PATTERN",
}


class PolicyError(ValueError):
    """A policy value that cannot be used (raised as InvalidParameterException by the backend)."""


@dataclass(frozen=True)
class Policy:
    """What a collection (or, for settings it does not set, the server) allows."""

    min_search_similarity: float = DEFAULT_MIN_SEARCH_SIMILARITY
    max_false_match_probability: float = DEFAULT_MAX_FALSE_MATCH_PROBABILITY
    min_compare_similarity: float = DEFAULT_MIN_COMPARE_SIMILARITY
    require_purpose: bool = False
    purpose_pattern: str | None = None  # the whole purpose must match it (re.fullmatch), when one is given
    max_results: int | None = None  # cap on MaxFaces / MaxUsers of a search
    retention_days: float | None = None  # faces older than this are deleted (and the deletion audited)
    require_review: bool = False  # the console exports a search's results only once each candidate has a decision
    keep_face_crops: bool = False  # IndexFaces keeps a 96x96 JPEG of each face (a photo of a person: opt-in)

    def __post_init__(self) -> None:
        for name in ("min_search_similarity", "min_compare_similarity"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_SIMILARITY:
                raise PolicyError(f"{WIRE_NAMES[name]} must be 0..100, not {value}")
        if not 0.0 < self.max_false_match_probability <= 1.0:
            raise PolicyError(f"MaxFalseMatchProbability must be in (0, 1], not {self.max_false_match_probability}")
        if self.purpose_pattern is not None:
            try:
                re.compile(self.purpose_pattern)
            except re.error as exc:
                raise PolicyError(f"PurposePattern is not a regular expression: {exc}") from None
        if self.max_results is not None and self.max_results < 1:
            raise PolicyError(f"MaxResults must be at least 1, not {self.max_results}")
        if self.retention_days is not None and not self.retention_days > 0:
            raise PolicyError(f"RetentionDays must be positive, not {self.retention_days}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Policy:
        """Server-wide defaults from FACELENS_MIN_SEARCH_SIMILARITY, FACELENS_MAX_FALSE_MATCH_PROBABILITY,
        FACELENS_MIN_COMPARE_SIMILARITY, FACELENS_REQUIRE_PURPOSE and FACELENS_PURPOSE_PATTERN."""
        values: dict[str, Any] = {}
        for name, variable in ENVIRONMENT.items():
            raw = (env.get(variable) or "").strip()
            if not raw:
                continue
            if name == "require_purpose":
                values[name] = raw.lower() not in ("0", "false", "no", "off")
                continue
            if name == "purpose_pattern":
                values[name] = raw
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                raise PolicyError(f"{variable} must be a number, not {raw!r}") from None
        try:
            return cls(**values)
        except PolicyError as exc:
            raise PolicyError(f"server policy from the environment: {exc}") from None

    def purpose_refusal(self, collection_id: str, purpose: str | None) -> str | None:
        """Why a search or association on `collection_id` with `purpose` is refused, or None when it may run."""
        if self.require_purpose and not purpose:
            return (f"collection {collection_id} requires a purpose: send the case or ticket reference in the "
                    "x-facelens-purpose header")
        if purpose and self.purpose_pattern and not re.fullmatch(self.purpose_pattern, purpose):
            return (f"collection {collection_id} requires a purpose matching {self.purpose_pattern!r}; "
                    f"{purpose[:80]!r} does not")
        return None

    def updated(self, overrides: Mapping[str, Any]) -> Policy:
        """This policy with some members set (snake_case names; None leaves a member as it is)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise PolicyError(f"unknown policy settings: {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_wire(self) -> dict[str, Any]:
        return {WIRE_NAMES[k]: v for k, v in asdict(self).items() if v is not None}



def size_floor(gallery: int, max_false_match_probability: float) -> float:
    """The Similarity at which a search of `gallery` faces returns a stranger with the given probability."""
    if gallery < 1:
        return 0.0
    return SIMILARITY_OFFSET + SIMILARITY_PER_DECADE * math.log10(gallery / max_false_match_probability)


def false_match_probability(threshold: float, gallery: int) -> float:
    """The chance that a search of `gallery` faces at `threshold` returns at least one stranger (exact for
    independent comparisons: 1 - (1 - FMR)^G, about G x FMR when small)."""
    if gallery < 1:
        return 0.0
    fmr = min(fmr_from_similarity(threshold), 1.0)
    return -math.expm1(gallery * math.log1p(-fmr)) if fmr < 1.0 else 1.0


@dataclass(frozen=True)
class Threshold:
    """How a search's threshold was decided."""

    requested: float | None  # as sent (None: the client sent none)
    effective: float  # what the search was answered at
    floor: float  # the larger of min_search_similarity and the size floor
    gallery: int  # faces in the collection
    false_match_probability: float  # at `effective`, for this gallery


def search_threshold(policy: Policy, requested: float | None, default: float, gallery: int) -> Threshold:
    """The effective threshold of a 1:N search: the request's (or the operation's default), raised to the floor."""
    floor = max(policy.min_search_similarity, size_floor(gallery, policy.max_false_match_probability))
    floor = min(floor, MAX_SIMILARITY)
    effective = max(default if requested is None else requested, floor)
    return Threshold(requested, effective, floor, gallery, false_match_probability(effective, gallery))


def compare_threshold(policy: Policy, requested: float | None, default: float) -> Threshold:
    """The effective threshold of a 1:1 CompareFaces (a gallery of one)."""
    effective = max(default if requested is None else requested, policy.min_compare_similarity)
    return Threshold(requested, effective, policy.min_compare_similarity, 1, false_match_probability(effective, 1))


def capped(policy: Policy, requested: int) -> int:
    """A search's MaxFaces / MaxUsers under the policy's `max_results`."""
    return requested if policy.max_results is None else min(requested, policy.max_results)
