-- People: accounts and roles, what each may see, browser sessions and API tokens, failed logins
-- (rate limit and lock-out) and the append-only audit log.
CREATE TABLE "users" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "username" TEXT NOT NULL UNIQUE,
   "role" TEXT NOT NULL CHECK ("role" IN ('admin', 'shop_owner', 'police', 'dorm_manager', 'grid_worker')),
   "password_hash" TEXT NOT NULL,
   "locale" TEXT NOT NULL DEFAULT 'zh' CHECK ("locale" IN ('zh', 'en')),
   "created" REAL NOT NULL,
   "password_changed" REAL NOT NULL,
   -- Set after too many failed logins; only an admin lifts it (`diaolou-hub users unlock`).
   "locked" REAL
);
-- What a user may see besides their role: cameras (shop owners), sites (police), buildings (dorm
-- managers), grids (grid workers). Deny by default: no row, nothing seen.
CREATE TABLE "user_scopes" (
   "user_id" INTEGER NOT NULL REFERENCES "users" ("id") ON DELETE CASCADE,
   "kind" TEXT NOT NULL CHECK ("kind" IN ('camera', 'site', 'building', 'grid')),
   "value" TEXT NOT NULL,
   PRIMARY KEY ("user_id", "kind", "value")
);
-- Browser sessions (cookie), the bearer token a login returns, and API tokens. Only the SHA-256
-- of the secret is kept. `login` ties the cookie and the bearer token of one sign-in together.
CREATE TABLE "credentials" (
   "digest" TEXT PRIMARY KEY,
   "user_id" INTEGER NOT NULL REFERENCES "users" ("id") ON DELETE CASCADE,
   "kind" TEXT NOT NULL CHECK ("kind" IN ('session', 'bearer', 'api')),
   "login" TEXT,
   "name" TEXT,
   "csrf" TEXT,
   "created" REAL NOT NULL,
   "last_used" REAL NOT NULL,
   "expires" REAL NOT NULL,
   "address" TEXT,
   "revoked" REAL
);
CREATE INDEX "idx_credentials_user" ON "credentials" ("user_id");
CREATE INDEX "idx_credentials_login" ON "credentials" ("login");
CREATE TABLE "login_failures" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "username" TEXT NOT NULL,
   "address" TEXT NOT NULL,
   "time" REAL NOT NULL
);
CREATE INDEX "idx_login_failures_user" ON "login_failures" ("username", "time");
CREATE INDEX "idx_login_failures_address" ON "login_failures" ("address", "time");
-- Append-only: ids run 1, 2, 3... and each row carries the SHA-256 of the one before it, so an
-- edited or removed row breaks the chain (`diaolou-hub audit verify`). The triggers stop the
-- hub itself, or a careless operator, from changing history; the chain catches anyone else.
CREATE TABLE "audit" (
   "id" INTEGER PRIMARY KEY,
   "time" REAL NOT NULL,
   "actor" TEXT NOT NULL,
   "role" TEXT,
   "action" TEXT NOT NULL,
   "target" TEXT,
   "address" TEXT,
   "detail" TEXT NOT NULL,
   "prev" TEXT NOT NULL,
   "hash" TEXT NOT NULL
);
CREATE INDEX "idx_audit_time" ON "audit" ("time");
CREATE INDEX "idx_audit_actor" ON "audit" ("actor", "time");
CREATE TRIGGER "audit_no_update" BEFORE UPDATE ON "audit" BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER "audit_no_delete" BEFORE DELETE ON "audit" BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- The alert feed: newest first per camera and overall, first messages of events only.
CREATE INDEX "idx_events_feed" ON "events" ("time") WHERE "phase" IN ('new', 'instant');
CREATE INDEX "idx_events_camera_feed" ON "events" ("site", "device", "camera", "time") WHERE "phase" IN ('new', 'instant');
