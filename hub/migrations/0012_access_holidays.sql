-- The holiday calendar of the gates (site time): a group's schedule is closed on these days
-- unless it was made with --open-on-holidays. Travels whole in every list.
CREATE TABLE "access_holidays" (
   "day" TEXT PRIMARY KEY,
   "name" TEXT NOT NULL DEFAULT ''
);
