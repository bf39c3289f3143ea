"""Durable storage of collections, faces and users: the metadata store (source of truth) and the vector cache."""

from facelens.store.base import CollectionRecord, FaceRecord, MetadataStore, NewFace, Session, UserRecord
from facelens.store.sql.sqlite import SqliteMetadataStore
from facelens.store.vectors import VectorCache, VectorConfig

__all__ = [
    "CollectionRecord",
    "FaceRecord",
    "MetadataStore",
    "NewFace",
    "Session",
    "SqliteMetadataStore",
    "UserRecord",
    "VectorCache",
    "VectorConfig",
]
