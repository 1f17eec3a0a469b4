-- 009: every prompt version has a number and a label to show. Versions written through ccanalytics
-- carry both (name@vN). Rows the call processor writes itself into its prompt_versions (attach mode)
-- have neither, and attach never rewrites their data: they read as version = their id and label =
-- name@v<id>. Numbers stay unique per name because a new version is numbered after the largest
-- number or id of its name, and ids only grow (the ids come from one sequence). Everything that shows
-- or looks up a version reads this view; writes go to the table.
CREATE VIEW cca_prompt_versions AS
SELECT id, name, coalesce(version, id::integer) AS version,
       coalesce(label, name || '@v' || coalesce(version, id::integer)) AS label,
       system_prompt, tools_config, metadata, is_active, created_at, created_by, note
FROM prompt_versions;
