-- A police user's feed (every camera of their sites, newest first): without this index SQLite
-- picked the (site, device, time) index and sorted all of a site's events for each page, 0.2 to
-- 0.5 s at a million events (bench/hub_feed.py); with it a page is an index range walk.
CREATE INDEX "idx_events_site_feed" ON "events" ("site", "time") WHERE "phase" IN ('new', 'instant');
ANALYZE;
