-- Evidence clips pulled for an incident: their hold on the box stays until the incident is closed.
CREATE TABLE "incident_clips" (
   "incident_id" INTEGER NOT NULL REFERENCES "incidents" ("id"),
   "clip_id" TEXT NOT NULL,
   "attached" REAL NOT NULL,
   PRIMARY KEY ("incident_id", "clip_id")
);
CREATE INDEX "idx_incident_clips_clip" ON "incident_clips" ("clip_id");
