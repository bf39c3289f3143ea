"""The console's HTML: one layout, small escaping helpers, and the headers every console response carries.

Every value that reaches a page goes through `esc` (or an attribute helper built on it); pages load only the
console's own static files (`/console/static/`), so the Content-Security-Policy allows nothing else: no inline
script, no external origin, no framing by another site.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from starlette.responses import HTMLResponse

from facelens.console.sessions import Session

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
NAV = (("collections", "Collections", "/console/collections"), ("search", "Search and review", "/console/search"),
       ("audit", "Audit", "/console/audit"), ("video", "Video", "/console/video"),
       ("evaluation", "Evaluation", "/console/evaluation"))


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def csrf_field(session: Session) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(session.csrf)}">'


def table(caption: str, header: Iterable[str], rows: Iterable[Iterable[str]], empty: str = "None yet.",
          ident: str | None = None) -> str:
    """A table of already-escaped cells, with a caption and column headers for assistive technology."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    head = "".join(f'<th scope="col">{esc(name)}</th>' for name in header)
    if not body:
        return f'<p class="empty"{_id(ident)}>{esc(empty)}</p>'
    return (f'<div class="scroll"><table{_id(ident)}><caption>{esc(caption)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _id(ident: str | None) -> str:
    return f' id="{esc(ident)}"' if ident else ""


def notice(text: str, kind: str = "info") -> str:
    role = "alert" if kind == "error" else "status"
    return f'<p class="notice {kind}" role="{role}">{esc(text)}</p>'


def scope_text(session: Session) -> str:
    scope = session.scope
    parts = ["admin key" if scope.admin else "read-only key" if scope.read_only else "read-write key"]
    if scope.collections is not None:
        parts.append("collections: " + ", ".join(sorted(scope.collections)))
    if scope.operations is not None:
        parts.append(f"{len(scope.operations)} operations")
    return "; ".join(parts)


def page(title: str, body: str, session: Session | None = None, active: str = "", status: int = 200,
         flash: Iterable[str] = ()) -> HTMLResponse:
    """A whole console page: skip link, header with the signed-in key and its scope, navigation, main."""
    header = '<header class="top"><p class="brand">FaceLens console</p>'
    if session is not None:
        links = "".join(
            f'<li><a href="{href}"{" aria-current=page" if name == active else ""}>{esc(label)}</a></li>'
            for name, label, href in NAV)
        header += (f'<nav aria-label="Console"><ul>{links}</ul></nav><div class="who"><span id="who">'
                   f'{esc(session.key_id)} ({esc(scope_text(session))})</span>'
                   f'<form method="post" action="/console/signout">{csrf_field(session)}'
                   '<button type="submit">Sign out</button></form></div>')
    header += "</header>"
    notes = "".join(notice(text) for text in flash)
    html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{esc(title)} · FaceLens console</title>'
            '<link rel="stylesheet" href="/console/static/console.css">'
            '<script src="/console/static/console.js" defer></script></head><body>'
            '<a class="skip" href="#main">Skip to content</a>'
            f'{header}<main id="main" tabindex="-1"><h1>{esc(title)}</h1>{notes}{body}</main></body></html>')
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def error_page(title: str, message: str, session: Session | None, status: int, back: str | None = None) -> HTMLResponse:
    link = f'<p><a href="{esc(back)}">Back</a></p>' if back else ""
    return page(title, notice(message, "error") + link, session, status=status)
