//! Opens the bundle object store from a URL or a path.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::prefix::PrefixStore;
use object_store::{local::LocalFileSystem, memory::InMemory, ObjectStore};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

pub type Store = Arc<dyn ObjectStore>;

/// `s3://bucket[/prefix]`, `memory://`, `file:///abs/dir` or a plain directory path
/// (created when missing). For S3, endpoint, region and keys come from the standard
/// `AWS_*` variables (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_DEFAULT_REGION`, `AWS_ALLOW_HTTP`, ...), as `AmazonS3Builder::from_env` reads them.
pub fn open(url: &str) -> anyhow::Result<Store> {
    open_with_env(url, std::env::vars())
}

/// [`open`] with the `AWS_*` settings taken from `vars` instead of the process
/// environment.
pub fn open_with_env(
    url: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Store> {
    if url == "memory://" {
        return Ok(Arc::new(InMemory::new()));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        return open_s3(rest, vars);
    }
    let dir = match url.strip_prefix("file://") {
        Some(path) => path.to_owned(),
        None if url.contains("://") || looks_like_scheme(url) => {
            anyhow::bail!("unsupported object store URL {url:?}: use s3://bucket[/prefix], a directory path, file:///dir or memory://")
        }
        None => url.to_owned(),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create object store directory {dir}"))?;
    // Bundles, uploads and app files of every app: the platform's alone. App processes
    // run as other users, and the files below are created with the process's umask.
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Err(e) = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir, error = %e, "cannot make the object store directory private (0700): other users of this machine, app processes included, may read every app's bundles and files");
        }
    }
    let store = LocalFileSystem::new_with_prefix(&dir)
        .with_context(|| format!("cannot open object store directory {dir}"))?;
    Ok(Arc::new(store))
}

/// `s3:/bucket`, `file:dir`: a URL scheme mistyped, which would otherwise be taken for
/// a relative directory named `s3:`.
fn looks_like_scheme(url: &str) -> bool {
    url.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && !scheme.contains('/')
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-')
            && scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
    })
}

fn open_s3(
    bucket_and_prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Store> {
    let (bucket, prefix) = match bucket_and_prefix.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/')),
        None => (bucket_and_prefix, ""),
    };
    if bucket.is_empty() {
        anyhow::bail!("object store URL s3://{bucket_and_prefix} names no bucket: use s3://<bucket>[/<prefix>]");
    }
    // Fail fast when the store is down (a deploy answers 503 in seconds, not minutes);
    // `AWS_*` client settings below may still override the timeouts.
    let mut builder = AmazonS3Builder::new()
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(30)),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(5),
        });
    for (key, value) in vars {
        if key.starts_with("AWS_") {
            if let Ok(k) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(k, value);
            }
        }
    }
    let s3 = builder
        .with_bucket_name(bucket)
        .build()
        .with_context(|| format!("cannot configure the S3 object store for bucket {bucket}"))?;
    if prefix.is_empty() {
        Ok(Arc::new(s3))
    } else {
        Ok(Arc::new(PrefixStore::new(s3, prefix)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unsupported_schemes_and_bucketless_urls_are_refused_with_the_form_expected() {
        let e = super::open("gs://x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("s3://bucket[/prefix]"), "{e}");
        let e = super::open_with_env("s3:///x", Vec::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("names no bucket"), "{e}");
        // A mistyped scheme is not a relative directory named `s3:` (created before).
        for typo in ["s3:/nope", "s3:nope", "file:data"] {
            let e = super::open(typo)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("unsupported object store URL"), "{typo}: {e}");
            assert!(!std::path::Path::new(typo).exists(), "{typo} was created");
        }
    }
}
