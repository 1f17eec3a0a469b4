-- 009: how ccanalytics shows and looks up a prompt version. The call processor's prompt_versions has
-- no number and no label, and ccanalytics never changes its rows: a version's number is its place
-- among the versions of its name in order of creation (created_at never changes, rows are never
-- deleted by ccanalytics, so the number is stable), its label is name@vN. is_active is the version
-- ccanalytics's prompt resolver serves: the latest activation done through ccanalytics
-- (prompt_activations), or, for a name never activated through ccanalytics, the processor's own flag,
-- which stays beside as processor_active. Everything that shows or looks up a version reads this view.
CREATE VIEW cca_prompt_versions AS
SELECT v.id, v.name, n.version, v.name || '@v' || n.version AS label,
       v.system_prompt, coalesce(v.tools_config, '{}'::jsonb) AS tools_config,
       coalesce(v.metadata, '{}'::jsonb) AS metadata,
       CASE WHEN a.name IS NOT NULL THEN v.id = a.to_version_id ELSE coalesce(v.is_active, false) END AS is_active,
       coalesce(v.is_active, false) AS processor_active,
       v.created_at, m.created_by, m.note
FROM prompt_versions v
JOIN (SELECT id, row_number() OVER (PARTITION BY name ORDER BY created_at, id)::integer AS version
      FROM prompt_versions) n ON n.id = v.id
LEFT JOIN (SELECT DISTINCT ON (name) name, to_version_id
           FROM prompt_activations ORDER BY name, activated_at DESC, id DESC) a ON a.name = v.name
LEFT JOIN cca_prompt_version_notes m ON m.version_id = v.id;
