-- Dormitory access control: buildings, the gate doors of each box, residents and their cards,
-- and the versioned allow-list each gate box is sent (signed) over MQTT.
CREATE TABLE "buildings" (
   "name" TEXT PRIMARY KEY,
   "created" REAL NOT NULL
);
-- Which building each door of a gate box opens: set by an admin (`diaolou-hub cards door`), never
-- taken from what a box claims, so a box receives only the residents of its own buildings.
CREATE TABLE "gate_doors" (
   "site" TEXT NOT NULL,
   "device" TEXT NOT NULL,
   "door" TEXT NOT NULL,
   "building" TEXT NOT NULL REFERENCES "buildings" ("name"),
   PRIMARY KEY ("site", "device", "door")
);
CREATE INDEX "idx_gate_doors_building" ON "gate_doors" ("building");
CREATE TABLE "residents" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "employee_no" TEXT NOT NULL UNIQUE,
   "name" TEXT NOT NULL,
   "company" TEXT NOT NULL DEFAULT '',
   "building" TEXT NOT NULL REFERENCES "buildings" ("name"),
   "room" TEXT NOT NULL DEFAULT '',
   "phone" TEXT NOT NULL DEFAULT '',
   "kind" TEXT NOT NULL DEFAULT 'resident' CHECK ("kind" IN ('resident', 'visitor')),
   "created" REAL NOT NULL,
   "updated" REAL NOT NULL
);
CREATE INDEX "idx_residents_building" ON "residents" ("building", "name");
-- A card's life: active, suspended (may come back), lost (replaced), returned, revoked. Only an
-- active or suspended card holds its number: a returned card may be issued again to someone else.
CREATE TABLE "cards" (
   "id" INTEGER PRIMARY KEY AUTOINCREMENT,
   "resident_id" INTEGER NOT NULL REFERENCES "residents" ("id"),
   "format" TEXT NOT NULL CHECK ("format" IN ('wiegand26', 'wiegand34', 'number')),
   "bits" INTEGER NOT NULL,
   "facility" INTEGER NOT NULL,
   "number" INTEGER NOT NULL,
   "raw" TEXT NOT NULL,
   "state" TEXT NOT NULL CHECK ("state" IN ('active', 'suspended', 'lost', 'returned', 'revoked')),
   "valid_from" REAL,
   "valid_until" REAL,
   "max_uses" INTEGER,
   "issued" REAL NOT NULL,
   "changed" REAL NOT NULL,
   "version" INTEGER NOT NULL
);
CREATE UNIQUE INDEX "idx_cards_live" ON "cards" ("facility", "number", "bits") WHERE "state" IN ('active', 'suspended');
CREATE INDEX "idx_cards_resident" ON "cards" ("resident_id");
-- Every change to what a gate allows appends a row per building it touches; the row's id is the
-- allow-list version. A gate at version V has seen every change <= V of its buildings, so its
-- delta is the cards of the rows > V of its buildings.
CREATE TABLE "list_changes" (
   "version" INTEGER PRIMARY KEY AUTOINCREMENT,
   "time" REAL NOT NULL,
   "building" TEXT NOT NULL,
   "card_id" INTEGER NOT NULL
);
CREATE INDEX "idx_list_changes_building" ON "list_changes" ("building", "version");
-- What each gate box was sent and what it last reported (heartbeat).
CREATE TABLE "gate_lists" (
   "site" TEXT NOT NULL,
   "device" TEXT NOT NULL,
   "sent_version" INTEGER,
   "sent" REAL,
   "reported_version" INTEGER,
   "reported" REAL,
   "rejected" TEXT,
   "needs_snapshot" INTEGER NOT NULL DEFAULT 1,
   PRIMARY KEY ("site", "device")
);
