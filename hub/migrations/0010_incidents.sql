-- The grid incident registry: grids imported from GeoJSON, where devices and cameras stand (and
-- so which grid they belong to), incidents with their lifecycle, the append-only history of each
-- incident, the alerts attached to it and its references in outside systems.
CREATE TABLE "grids" (
   "code" TEXT PRIMARY KEY,
   "name" TEXT NOT NULL,
   "civil_code" TEXT NOT NULL,
   -- GeoJSON geometry (Polygon or MultiPolygon), WGS84 lon/lat; the box speeds point lookups up.
   "geometry" TEXT NOT NULL,
   "min_lon" REAL NOT NULL,
   "min_lat" REAL NOT NULL,
   "max_lon" REAL NOT NULL,
   "max_lat" REAL NOT NULL,
   "imported" REAL NOT NULL
);
-- A device ("site.device") or a camera ("site.device.camera"): its position, and its grid, either
-- assigned by hand ("assigned" = 1) or found from the position. A camera's own row wins over its
-- device's.
CREATE TABLE "grid_places" (
   "ref" TEXT PRIMARY KEY,
   "grid" TEXT REFERENCES "grids" ("code") ON DELETE SET NULL,
   "lon" REAL,
   "lat" REAL,
   "assigned" INTEGER NOT NULL,
   "updated" REAL NOT NULL
);
CREATE TABLE "incidents" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "status" TEXT NOT NULL CHECK ("status" IN ('reported', 'accepted', 'rejected', 'dispatched', 'in_progress',
       'resolved', 'verified', 'closed', 'rework', 'suspended')),
   "grid" TEXT,
   "category" TEXT NOT NULL,
   "priority" TEXT NOT NULL CHECK ("priority" IN ('urgent', 'high', 'normal', 'low')),
   "title" TEXT NOT NULL,
   "description" TEXT NOT NULL,
   "site" TEXT,
   "device" TEXT,
   "camera" TEXT,
   "lon" REAL,
   "lat" REAL,
   "source" TEXT NOT NULL CHECK ("source" IN ('manual', 'rule', 'open311')),
   "created" REAL NOT NULL,
   "updated" REAL NOT NULL,
   -- The deadline clock starts at dispatch: due = dispatched + the priority's hours.
   "dispatched" REAL,
   "due" REAL,
   "resolved" REAL,
   "closed" REAL,
   "reworks" INTEGER NOT NULL DEFAULT 0,
   -- While suspended: the status to go back to on resume.
   "suspended_from" TEXT
);
CREATE INDEX "idx_incidents_status" ON "incidents" ("status", "grid");
CREATE INDEX "idx_incidents_grid" ON "incidents" ("grid", "created");
CREATE INDEX "idx_incidents_place" ON "incidents" ("site", "device", "camera", "category", "status");
-- Every transition and note, append-only (the triggers): who, when, what, photos (file names
-- under incident-photos/ beside hub.db).
CREATE TABLE "incident_events" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "incident_id" INTEGER NOT NULL REFERENCES "incidents" ("id"),
   "time" REAL NOT NULL,
   "actor" TEXT NOT NULL,
   "role" TEXT,
   "action" TEXT NOT NULL,
   "from_status" TEXT,
   "to_status" TEXT NOT NULL,
   "note" TEXT NOT NULL,
   "photos" TEXT NOT NULL
);
CREATE INDEX "idx_incident_events" ON "incident_events" ("incident_id", "id");
CREATE TRIGGER "incident_events_no_update" BEFORE UPDATE ON "incident_events"
BEGIN SELECT RAISE(ABORT, 'incident history is append-only'); END;
CREATE TRIGGER "incident_events_no_delete" BEFORE DELETE ON "incident_events"
BEGIN SELECT RAISE(ABORT, 'incident history is append-only'); END;
CREATE TABLE "incident_alerts" (
   "incident_id" INTEGER NOT NULL REFERENCES "incidents" ("id"),
   "event_id" TEXT NOT NULL,
   "attached" REAL NOT NULL,
   PRIMARY KEY ("incident_id", "event_id")
);
CREATE INDEX "idx_incident_alerts_event" ON "incident_alerts" ("event_id");
CREATE TABLE "incident_refs" (
   "incident_id" INTEGER NOT NULL REFERENCES "incidents" ("id"),
   "system" TEXT NOT NULL,
   "ref" TEXT NOT NULL,
   PRIMARY KEY ("incident_id", "system")
);
