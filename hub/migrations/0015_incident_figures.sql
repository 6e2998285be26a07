-- The figures (hub/services/figures.py) select incidents by deadline within a period.
CREATE INDEX "idx_incidents_due" ON "incidents" ("due", "grid", "category") WHERE "due" IS NOT NULL;
