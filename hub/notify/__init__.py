"""Alerts to phones while the page is closed: per-user channels (WeCom and DingTalk group robots),
arming schedules per user and camera, and the notifier that delivers through a durable outbox.

- `models`: what the API takes and returns (secrets masked).
- `settings`: what comes from the hub's config (web.public_url, time_zone, notification_hosts)
  and the notifier's timing.
- `schedule`: armed or not at a time, in the camera's time zone.
- `message`: the words a phone shows, in the recipient's language.
- `robots`: the robots' JSON, DingTalk's signature, one POST and what counts as delivered.
- `channels`: the service behind the API (channels, arming, the test message; audited).
- `notifier`: the matcher and sender threads HubServer runs.
"""
