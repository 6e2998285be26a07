-- Open311 GeoReport v2 API keys (`diaolou-hub open311 key`): only the SHA-256 of the key is kept.
CREATE TABLE "open311_keys" (
   "digest" TEXT PRIMARY KEY,
   "name" TEXT NOT NULL UNIQUE,
   "created" REAL NOT NULL,
   "revoked" REAL
);
