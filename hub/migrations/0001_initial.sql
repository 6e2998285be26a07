-- The tables as the hub created them before schema versions existed; IF NOT EXISTS so that a
-- hub.db made then (user_version 0, tables present) passes through unchanged.
CREATE TABLE IF NOT EXISTS "events" (
   "id" TEXT,
   "phase" TEXT,
   "seq" INTEGER,
   "site" TEXT NOT NULL,
   "device" TEXT NOT NULL,
   "camera" TEXT,
   "kind" TEXT NOT NULL,
   "time" REAL NOT NULL,
   "end" REAL,
   "test" INTEGER NOT NULL,
   "detail" TEXT,
   "snapshot" TEXT,
   "received" REAL NOT NULL,
   PRIMARY KEY ("id", "phase", "seq")
);
-- Rowid order is arrival order (the table keeps its rowid): per device it is the agent's send order.
CREATE INDEX IF NOT EXISTS "idx_events_site_device_time" ON "events" ("site", "device", "time");
CREATE INDEX IF NOT EXISTS "idx_events_time" ON "events" ("time");
CREATE TABLE IF NOT EXISTS "devices" (
   "site" TEXT,
   "device" TEXT,
   "state" TEXT,
   "clean" INTEGER,
   "status_time" REAL,
   "status_received" REAL,
   "agent_version" TEXT,
   "cameras" TEXT,
   "last_heartbeat" TEXT,
   "heartbeat_time" REAL,
   "first_seen" REAL,
   "last_seen" REAL,
   PRIMARY KEY ("site", "device")
);
CREATE TABLE IF NOT EXISTS "replies" (
   "site" TEXT,
   "device" TEXT,
   "id" TEXT,
   "ok" INTEGER,
   "time" REAL,
   "result" TEXT,
   "error" TEXT,
   "received" REAL,
   PRIMARY KEY ("site", "device", "id")
);
-- Event snapshots: the JPEG is a file under snapshots/<site>/<device>/<event id>.jpg beside
-- hub.db; the end-of-event snapshot (the best one) replaces the first.
CREATE TABLE IF NOT EXISTS "snapshots" (
   "site" TEXT,
   "device" TEXT,
   "event_id" TEXT,
   "path" TEXT,
   "bytes" INTEGER,
   "received" REAL,
   PRIMARY KEY ("site", "device", "event_id")
);
CREATE TABLE IF NOT EXISTS "rejections" (
   "site" TEXT,
   "device" TEXT,
   "cause" TEXT,
   "count" INTEGER,
   "first_seen" REAL,
   "last_seen" REAL,
   "last_error" TEXT,
   "last_topic" TEXT,
   PRIMARY KEY ("site", "device", "cause")
);
