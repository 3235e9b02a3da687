-- App files are uploads too, and a returned file may belong to a job.
--   kind    'download': a file an app returned (`noderouter.download(...)`), served at
--                       `/files/<token>` until `expires_at`;
--           'upload':   a file a route received, read by the app with
--                       `noderouter.read_upload(handle)`; never served by a link.
--   job_id  the async job whose run returned the file: the file goes when the job's
--           row is pruned by retention.
-- Every row goes after NR_FILES_MAX_AGE_S. The table's one owner is now
-- shared/infra/src/files.rs (used by the gateway and the runner).
ALTER TABLE noderouter_core.app_files
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'download' CHECK (kind IN ('download', 'upload')),
    ADD COLUMN job_id UUID;
CREATE INDEX app_files_job ON noderouter_core.app_files (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX app_files_created ON noderouter_core.app_files (created_at);
