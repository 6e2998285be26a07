"""Alerts to phones while the page is closed: per-user channels (WeCom and DingTalk group robots),
arming schedules per user and camera, and the notifier that delivers through a durable outbox.

- `models`: what the API takes and returns (secrets masked).
- `schedule`: armed or not at a time, in the camera's time zone.
- `robots`: the robots' JSON, DingTalk's signature, one POST and what counts as delivered.
- `channels`: the service behind the API (CRUD, audit).
- `notifier`: the matcher and sender threads HubServer runs.
"""
