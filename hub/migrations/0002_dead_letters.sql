-- Messages that passed the contract but could not be stored (the database refused the row):
-- set aside with the reason so that they never block a batch again, kept for the operator
-- (`diaolou-hub dead-letters`). Bounded: the writer keeps the newest `limits.max_dead_letters`.
CREATE TABLE "dead_letters" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "site" TEXT NOT NULL,
   "device" TEXT NOT NULL,
   "kind" TEXT NOT NULL,
   "error" TEXT NOT NULL,
   "message" TEXT NOT NULL,
   "received" REAL NOT NULL,
   "set_aside" REAL NOT NULL
);
CREATE INDEX "idx_dead_letters_device" ON "dead_letters" ("site", "device");
