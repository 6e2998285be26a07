-- The door board (hub/services/door_board.py) asks, per door, for its newest contact change,
-- swipe and alarms: an index over the gate events alone (those whose detail names a door), so a
-- board of a hundred doors is a few hundred index lookups and camera events add no index entry.
CREATE INDEX "idx_events_door" ON "events" (json_extract("detail", '$.door'), "site", "device", "kind", "time")
    WHERE json_extract("detail", '$.door') IS NOT NULL;
-- A door alarm acknowledged at the hub: who, when and their note (the audit log has it too).
CREATE TABLE "door_alarm_acks" (
   "site" TEXT NOT NULL,
   "device" TEXT NOT NULL,
   "event_id" TEXT NOT NULL,
   "username" TEXT NOT NULL,
   "acked" REAL NOT NULL,
   "note" TEXT NOT NULL DEFAULT '',
   PRIMARY KEY ("site", "device", "event_id")
);
CREATE INDEX "idx_door_alarm_acks_time" ON "door_alarm_acks" ("acked");
