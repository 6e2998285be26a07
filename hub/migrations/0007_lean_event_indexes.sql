-- Every index on events is paid for on every stored row, inside the ingest writer's commit (the
-- hub's one bottleneck under a burst from hundreds of boxes). These two full indexes served only
-- `diaolou-hub events list --site/--device/--since`, an occasional admin command that can afford
-- a scan in rowid (arrival) order; the pages read through the partial feed indexes of 0003/0005,
-- which hold only the rows that start an alert. Dropping them stores a row about 1.6x faster
-- (bench/hub_ingest.py, burst).
DROP INDEX IF EXISTS "idx_events_site_device_time";
DROP INDEX IF EXISTS "idx_events_time";
