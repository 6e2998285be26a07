-- The camera of the same box that watches a door (`diaolou-hub cards door --camera`): the dorm
-- managers of the door's building may watch it (live, playback, its alerts), so that "play back
-- from here" on a swipe works for them, and no other camera.
ALTER TABLE "gate_doors" ADD COLUMN "camera" TEXT;
