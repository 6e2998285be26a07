-- Groups that grant residents other buildings (cleaners, canteen staff) on weekly schedules.
-- Schedules and groups travel whole in every list a gate box is sent (they are few and small);
-- a member's cards travel to the gates of every building the member's groups grant.
CREATE TABLE "access_schedules" (
   "name" TEXT PRIMARY KEY,
   -- JSON [[weekday 0=Monday, start minute, end minute], ...], local time of the site
   "segments" TEXT NOT NULL,
   "closed_on_holidays" INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE "access_groups" (
   "name" TEXT PRIMARY KEY,
   "schedule" TEXT REFERENCES "access_schedules" ("name")
);
CREATE TABLE "access_group_buildings" (
   "group_name" TEXT NOT NULL REFERENCES "access_groups" ("name") ON DELETE CASCADE,
   "building" TEXT NOT NULL REFERENCES "buildings" ("name"),
   PRIMARY KEY ("group_name", "building")
);
CREATE TABLE "resident_groups" (
   "resident_id" INTEGER NOT NULL REFERENCES "residents" ("id") ON DELETE CASCADE,
   "group_name" TEXT NOT NULL REFERENCES "access_groups" ("name") ON DELETE CASCADE,
   PRIMARY KEY ("resident_id", "group_name")
);
CREATE INDEX "idx_resident_groups_group" ON "resident_groups" ("group_name");
