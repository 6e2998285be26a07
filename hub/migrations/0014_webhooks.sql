-- Outbound connector: external registries (and police systems) that receive every incident change
-- as a signed webhook, and the durable outbox of deliveries. One row per (target, idempotency key):
-- a change is queued once per target however often it is looked at; 'dead' rows are the
-- dead-letter list an admin can replay.
CREATE TABLE "webhook_targets" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "name" TEXT NOT NULL UNIQUE,
   "url" TEXT NOT NULL,
   "secret" TEXT NOT NULL,
   "enabled" INTEGER NOT NULL DEFAULT 1,
   "created" REAL NOT NULL
);
CREATE TABLE "webhook_outbox" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "target_id" INTEGER NOT NULL REFERENCES "webhook_targets" ("id") ON DELETE CASCADE,
   "idempotency_key" TEXT NOT NULL,
   "body" TEXT NOT NULL,
   "created" REAL NOT NULL,
   "state" TEXT NOT NULL DEFAULT 'pending' CHECK ("state" IN ('pending', 'sent', 'dead')),
   "attempts" INTEGER NOT NULL DEFAULT 0,
   "next_at" REAL NOT NULL,
   "last_error" TEXT,
   "done" REAL,
   UNIQUE ("target_id", "idempotency_key")
);
CREATE INDEX "idx_webhook_outbox_pending" ON "webhook_outbox" ("target_id", "id") WHERE "state" = 'pending';
