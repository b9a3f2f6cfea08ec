-- When each instance last recorded a change of its sockets' presence: the others read this
-- one small table every second and read the presence of their projects' members (a row per
-- member) only when some instance's mark moved, one appeared or one went stale.
ALTER TABLE instances ADD COLUMN presence_changed_at timestamptz;
