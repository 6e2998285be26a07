"""Where this box reaches the hub's HTTP port, and with what: `hub.url` and `hub.token_file`.

Evidence clip uploads (clip_job.py) and the media channel (edge_agent/media/) both use them.
"""

from __future__ import annotations

from edge_agent.config.schema import HubLinkConfig


class HubNotConfigured(Exception):
    """No usable hub URL or device token; the message says what to set."""


def hub_credentials(hub: HubLinkConfig) -> tuple[str, str]:
    """(base URL without a trailing slash, device token)."""
    if hub.url is None or hub.token_file is None:
        raise HubNotConfigured("no hub configured on this box: set hub.url and hub.token_file in its config")
    try:
        token = hub.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise HubNotConfigured(f"cannot read the device token {hub.token_file}: {exc.strerror or exc}") from None
    if not token:
        raise HubNotConfigured(f"the device token file {hub.token_file} is empty")
    return hub.url.rstrip("/"), token
