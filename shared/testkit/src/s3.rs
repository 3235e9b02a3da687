//! A private S3-compatible server (`s3s-fs`, installed by `scripts/lib.sh`) on a free
//! port with its own data directory and keys, killed on drop. Tests that need S3 fail
//! when the server is missing; they never pass without it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub struct TestS3 {
    child: Child,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// Where the server keeps objects: `<root>/<bucket>/<key>`.
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

/// `NR_S3_SERVER`, else `.tools/bin/s3s-fs` in the workspace, else `s3s-fs` on `PATH`.
fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NR_S3_SERVER") {
        return p.into();
    }
    let local = crate::workspace_root().join(".tools/bin/s3s-fs");
    if local.exists() {
        return local;
    }
    "s3s-fs".into()
}

impl TestS3 {
    /// Starts the server with `buckets` created.
    pub async fn start(buckets: &[&str]) -> anyhow::Result<TestS3> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("data");
        for b in buckets {
            std::fs::create_dir_all(root.join(b))?;
        }
        let access_key = format!("nr{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let secret_key = uuid::Uuid::new_v4().simple().to_string();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let mut child = Command::new(server_bin())
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", &access_key, "--secret-key", &secret_key])
                .arg(&root)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start s3s-fs (scripts/test installs it into .tools/bin)")?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(TestS3 {
                        child,
                        endpoint: format!("http://127.0.0.1:{port}"),
                        access_key,
                        secret_key,
                        root,
                        _dir: dir,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        anyhow::bail!("s3s-fs did not start")
    }

    /// The `AWS_*` settings that reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The file holding `key` of `bucket` on the server's disk.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(Path::new(key))
    }

    /// Stops the server (an outage), keeping its data.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        self.stop();
    }
}
