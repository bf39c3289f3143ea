"""Accountability: threshold floors and search policy, access-key scopes, the hash-chained audit log."""
