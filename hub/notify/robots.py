"""Posting a message to a WeCom (企业微信) or DingTalk (钉钉) group robot.

Both take `{"msgtype": "text", "text": {"content": ...}}` and answer HTTP 200 with
`{"errcode": 0, "errmsg": "ok"}`; a bad key, a failed signature, a missing keyword or the rate
limit (20 messages a minute per robot) is also HTTP 200, with another errcode. So a delivery
counts only when the answer is 2xx *and* errcode is 0; anything else raises `DeliveryError`
and the notifier tries again later.

DingTalk's signed robots ("加签") take `&timestamp=<ms>&sign=<s>` on the URL, where s is the
URL-encoded base64 of HMAC-SHA256(key = secret, message = "<timestamp>\n<secret>"); the
timestamp must be within an hour of DingTalk's clock, so it is made at each attempt.

The hub posts only to hosts listed in `web.notification_hosts` and follows no redirect: a
channel's URL is typed by a user, and must not make the hub call into its own network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from typing import Any

from hub.notify.models import ChannelKind

TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 64 * 1024  # a robot answers a few dozen bytes; read no more than this
_ERROR_CHARS = 300


class DeliveryError(Exception):
    """The robot did not take the message; the text says why, for the channel's status."""


def check_url(url: str, allowed_hosts: Collection[str]) -> str:
    """`url` if it is an http(s) address on an allowed host, else ValueError saying why."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the webhook address must start with https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the webhook address must not carry a user name or password")
    if parts.hostname.lower() not in allowed_hosts:
        raise ValueError(
            f"the hub posts only to {', '.join(sorted(allowed_hosts)) or 'no host'}, not {parts.hostname!r} "
            "(an admin can add hosts to web.notification_hosts)"
        )
    return url


def mask_url(url: str) -> str:
    """The address with its keys hidden: query values and long path parts keep 4 characters."""
    parts = urllib.parse.urlsplit(url)

    def hide(value: str) -> str:
        return value[:4] + "****" if len(value) > 8 else "****"

    path = "/".join(hide(p) if len(p) >= 16 else p for p in parts.path.split("/"))
    query = "&".join(
        f"{name}={hide(value)}" for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` parameter of a signed DingTalk robot, URL-encoded."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode("ascii"))


def signed_url(url: str, secret: str, now: float | None = None) -> str:
    timestamp = int((time.time() if now is None else now) * 1000)
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    return f"{url}{separator}timestamp={timestamp}&sign={dingtalk_sign(secret, timestamp)}"


def payload(kind: ChannelKind, text: str) -> dict[str, Any]:
    """The robot's JSON for a plain text message (the same shape for both robots)."""
    return {"msgtype": "text", "text": {"content": text}}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is then an HTTPError: a failed delivery


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(
    kind: ChannelKind,
    url: str,
    secret: str | None,
    text: str,
    allowed_hosts: Collection[str],
    timeout: float = TIMEOUT_SECONDS,
) -> None:
    """Deliver `text`; returns when the robot took it, raises DeliveryError otherwise."""
    try:
        check_url(url, allowed_hosts)
    except ValueError as exc:
        raise DeliveryError(str(exc)) from None
    target = signed_url(url, secret) if kind == "dingtalk" and secret else url
    body = json.dumps(payload(kind, text), ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        target, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            answer = response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}"[:_ERROR_CHARS]) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"cannot reach the robot: {reason}"[:_ERROR_CHARS]) from None
    try:
        result = json.loads(answer)
    except (ValueError, RecursionError):
        raise DeliveryError("the robot's answer is not JSON") from None
    errcode = result.get("errcode") if isinstance(result, dict) else None
    if type(errcode) is not int or errcode != 0:
        errmsg = result.get("errmsg") if isinstance(result, dict) else None
        raise DeliveryError(f"the robot refused it: errcode {errcode!r} {errmsg!r}"[:_ERROR_CHARS])
