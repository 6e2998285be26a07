-- Escalation to the police station of the site: where the police are with an incident
-- (escalated -> acknowledged -> dispatched -> on_scene -> done); each step is also a row of the
-- incident's history (action police.<step>) and of the audit log.
ALTER TABLE "incidents" ADD COLUMN "police_state" TEXT
    CHECK ("police_state" IN ('escalated', 'acknowledged', 'dispatched', 'on_scene', 'done'));
