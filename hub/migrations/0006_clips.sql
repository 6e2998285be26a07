-- Evidence clips (hub/services/clips.py): what was asked, by whom and why, how far the box got,
-- and the clip's hashes once the hub has checked the upload against the manifest. The files live
-- under clips/ beside hub.db; a row is `ready` only when both are in place and checked.
CREATE TABLE "clips" (
   "id" TEXT PRIMARY KEY,
   "site" TEXT NOT NULL,
   "device" TEXT NOT NULL,
   "camera" TEXT NOT NULL,  -- the camera's name on its box; its id is site.device.camera
   "start" REAL NOT NULL,
   "end" REAL NOT NULL,
   "reason" TEXT NOT NULL,
   "requested_by" TEXT NOT NULL,
   "requested_role" TEXT,
   "requested" REAL NOT NULL,
   "status" TEXT NOT NULL CHECK ("status" IN ('queued', 'building', 'uploading', 'ready', 'failed')),
   "error" TEXT,
   "progress" REAL NOT NULL DEFAULT 0,
   "bytes" INTEGER,  -- the MP4's size, as its upload declares it
   "received" INTEGER NOT NULL DEFAULT 0,  -- bytes of the MP4 the hub holds so far (resume from here)
   "sha256" TEXT,
   "manifest_sha256" TEXT,
   "updated" REAL NOT NULL,
   "ready" REAL
);
CREATE INDEX "idx_clips_requested" ON "clips" ("requested");
CREATE INDEX "idx_clips_device" ON "clips" ("site", "device", "status");
-- The chain of custody of each clip, append-only like the audit log; it goes into every package.
CREATE TABLE "clip_custody" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "clip" TEXT NOT NULL REFERENCES "clips" ("id"),
   "time" REAL NOT NULL,
   "actor" TEXT NOT NULL,
   "role" TEXT,
   "action" TEXT NOT NULL,
   "detail" TEXT NOT NULL
);
CREATE INDEX "idx_clip_custody_clip" ON "clip_custody" ("clip", "id");
CREATE TRIGGER "clip_custody_no_update" BEFORE UPDATE ON "clip_custody" BEGIN SELECT RAISE(ABORT, 'the chain of custody is append-only'); END;
CREATE TRIGGER "clip_custody_no_delete" BEFORE DELETE ON "clip_custody" BEGIN SELECT RAISE(ABORT, 'the chain of custody is append-only'); END;
-- Commands for the boxes, kept until the box replies (a box offline now gets them when it is back).
-- `payload` is the contract's Command, exactly as it is published on .../cmd/<name>.
CREATE TABLE "commands" (
   "id" TEXT PRIMARY KEY,
   "site" TEXT NOT NULL,
   "device" TEXT NOT NULL,
   "name" TEXT NOT NULL,
   "payload" TEXT NOT NULL,
   "created" REAL NOT NULL,
   "delivered" REAL,  -- last published to the broker
   "replied" REAL,
   "status" TEXT NOT NULL DEFAULT 'queued' CHECK ("status" IN ('queued', 'delivered', 'replied'))
);
CREATE INDEX "idx_commands_pending" ON "commands" ("site", "device", "created") WHERE "replied" IS NULL;
-- One HTTP credential per box (clip uploads); only its SHA-256 is kept, a new one replaces the old.
CREATE TABLE "device_credentials" (
   "site" TEXT NOT NULL,
   "device" TEXT NOT NULL,
   "digest" TEXT NOT NULL UNIQUE,
   "created" REAL NOT NULL,
   PRIMARY KEY ("site", "device")
);
