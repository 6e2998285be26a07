-- Triage: the rules that propose incidents from alerts (each a JSON TriageRule, hub/services/triage.py),
-- and how far triage has read the events table (in notify_cursor, arrival order).
CREATE TABLE "triage_rules" (
   "name" TEXT PRIMARY KEY,
   "rule" TEXT NOT NULL,
   "updated" REAL NOT NULL
);
INSERT INTO "notify_cursor" ("name", "position") SELECT 'triage', coalesce(max(rowid), 0) FROM "events";
