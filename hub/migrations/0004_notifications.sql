-- Notifications to phones: each user's channels (WeCom / DingTalk group robots), when they want
-- to hear about each camera (arming), the durable outbox of deliveries, and how far the notifier
-- has read the events table.
--
-- A channel's URL holds the robot's key and `secret` DingTalk's signing secret: the API never
-- returns either in full. failures / retry_at / last_error are the channel's delivery state:
-- the notifier backs off per channel (capped exponential) while its robot is down.
CREATE TABLE "notify_channels" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "user_id" INTEGER NOT NULL REFERENCES "users" ("id") ON DELETE CASCADE,
   "name" TEXT NOT NULL,
   "kind" TEXT NOT NULL CHECK ("kind" IN ('wecom', 'dingtalk')),
   "url" TEXT NOT NULL,
   "secret" TEXT,
   "enabled" INTEGER NOT NULL DEFAULT 1,
   "created" REAL NOT NULL,
   "updated" REAL NOT NULL,
   "failures" INTEGER NOT NULL DEFAULT 0,
   "retry_at" REAL NOT NULL DEFAULT 0,
   "last_error" TEXT,
   "last_sent" REAL
);
CREATE INDEX "idx_notify_channels_user" ON "notify_channels" ("user_id");
-- When a user wants alerts of a camera: local-time segments (JSON list of {start, end, days}) in
-- the camera's time zone. No row: always; an empty list: never.
CREATE TABLE "notify_arming" (
   "user_id" INTEGER NOT NULL REFERENCES "users" ("id") ON DELETE CASCADE,
   "camera" TEXT NOT NULL,
   "time_zone" TEXT NOT NULL,
   "segments" TEXT NOT NULL,
   "updated" REAL NOT NULL,
   PRIMARY KEY ("user_id", "camera")
);
-- One row per (channel, event): the key makes a delivery happen at most once per channel, however
-- often the event is matched. The text is composed when the alert is queued (the user's language,
-- the camera's time zone), so a retry sends the same words.
CREATE TABLE "notify_outbox" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "channel_id" INTEGER NOT NULL REFERENCES "notify_channels" ("id") ON DELETE CASCADE,
   "event_id" TEXT NOT NULL,
   "text" TEXT NOT NULL,
   "created" REAL NOT NULL,
   "state" TEXT NOT NULL DEFAULT 'pending' CHECK ("state" IN ('pending', 'sent', 'expired')),
   "attempts" INTEGER NOT NULL DEFAULT 0,
   "done" REAL,
   "last_error" TEXT,
   UNIQUE ("channel_id", "event_id")
);
CREATE INDEX "idx_notify_outbox_pending" ON "notify_outbox" ("channel_id", "id") WHERE "state" = 'pending';
CREATE INDEX "idx_notify_outbox_done" ON "notify_outbox" ("done") WHERE "state" != 'pending';
-- The last events rowid (arrival order) the notifier has matched. It starts after the events
-- already stored, so upgrading a hub does not send its history to anyone.
CREATE TABLE "notify_cursor" (
   "name" TEXT PRIMARY KEY,
   "position" INTEGER NOT NULL
);
INSERT INTO "notify_cursor" ("name", "position") SELECT 'events', coalesce(max(rowid), 0) FROM "events";
