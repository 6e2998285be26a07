-- The figures read only these columns: a covering index answers a year of 200,000 incidents from
-- the index alone (bench/incidents.py: 800 ms with table lookups).
DROP INDEX "idx_incidents_due";
CREATE INDEX "idx_incidents_figures" ON "incidents" ("due", "grid", "category", "status", "resolved", "reworks",
    "closed", "created") WHERE "due" IS NOT NULL;
