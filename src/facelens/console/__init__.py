"""The web console at `/console` (issue 17): sign-in with an access key, collections and faces, search with a
person's review of every candidate, the audit log, the model card. Served by `facelens serve` from this package
(plain HTML, one CSS and one small JS file; nothing from a CDN, no build step). See docs/console.md."""

from facelens.console.app import mount

__all__ = ["mount"]
