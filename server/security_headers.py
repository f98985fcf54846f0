"""The security headers of every HTTP answer, and the nonce of a page's inline scripts.

Cabinet's pages hold health records, so a browser is told to:
- run only our own scripts: ``script-src 'self'`` and a nonce, new for each answer, that
  each inline ``<script>`` of our templates carries (``csp_nonce`` in their context). A
  message, a note or a name that somehow reached a page as markup cannot run; nor can
  inline event handlers (``onclick=``), which is why the templates have none (nav.js gives
  forms their ``data-confirm``, ``data-autosubmit`` and ``data-select-all`` behaviours);
- load nothing from elsewhere (no CDNs: ``default-src 'self'``), post forms only to us,
  and let no other site frame a page (clickjacking: a staff page under a transparent
  layer);
- send no ``Referer`` to other sites: a page's address can hold a secret (a password-reset
  or invitation link, a calendar feed), and a link from it to a video call would hand it
  to that site;
- take a file for what we say it is (``nosniff``), and keep camera, microphone and location
  off (a video call opens in its own tab, on its own site);
- keep no page and no API answer (``Cache-Control: no-store``, unless the answer set its
  own): a client's file left in the cache of a shared computer is shown again by the Back
  button, or read from the disk, after its reader signed out. Static files stay cacheable.

Styles stay open to inline ``style`` attributes: the agenda draws with them, and a style
cannot run code. Style sheets are ours only (``style-src-elem 'self'``, the templates have
no ``<style>`` element): one slipped into a page could hide a warning or lay a fake form
over it.
"""

from __future__ import annotations

import secrets

from starlette.types import Message, Scope, Send

_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
# What a person's data is shown in: pages and the APIs' answers.
_NOT_KEPT = (b"text/html", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
    "style-src 'self' 'unsafe-inline'; style-src-elem 'self'; img-src 'self' data:; "
    "connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)


def start(scope: Scope, send: Send, *, https: bool) -> Send:
    """Give this HTTP request its scripts' nonce (``scope["state"]["csp_nonce"]``), and
    return ``send`` adding the headers to its answer: the policy to HTML pages, the rest to
    every answer (HSTS only where Cabinet is served over https)."""
    nonce = secrets.token_urlsafe(16)
    scope.setdefault("state", {})["csp_nonce"] = nonce
    always = [*_ALWAYS, _HSTS] if https else _ALWAYS

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _value in headers}
            headers += [h for h in always if h[0] not in present]
            content_type = next(
                (value for name, value in headers if name.lower() == b"content-type"), b""
            )
            if content_type.startswith(_NOT_KEPT) and b"cache-control" not in present:
                headers.append(_NO_STORE)
            if content_type.startswith(b"text/html"):
                policy = _POLICY.format(nonce=nonce).encode()
                headers.append((b"content-security-policy", policy))
            message = {**message, "headers": headers}
        await send(message)

    return sending
