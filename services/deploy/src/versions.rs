//! What a deploy's version says next to the version it replaces: the same number with
//! other contents, the same bundle again, or a lower number. Never a refusal (an author
//! may mean any of them); a warning in the report, so a mistake is seen at once.

use crate::findings::{finding, Finding};

/// The warning for deploying `new` (bundle `new_sha`) over `current` (`current_sha`),
/// if there is one.
pub fn warning(current: &str, current_sha: &str, new: &str, new_sha: &str) -> Option<Finding> {
    let (Ok(old), Ok(next)) = (semver::Version::parse(current), semver::Version::parse(new)) else {
        return None;
    };
    let message = if next == old && new_sha == current_sha {
        format!(
            "this bundle is the one deployed already (version {new}, the same contents): the runners load it again and nothing else changes"
        )
    } else if next == old {
        format!(
            "version {new} is deployed already with other contents: this deploy replaces it under the same number, so callers, logs and the console's list show one version for two different bundles (only their sha256 tells them apart); give each change a new version (a higher one than {current})"
        )
    } else if next < old {
        format!(
            "version {new} is lower than the deployed {current}: this deploy replaces a newer version; to go back to a version deployed before, POST /admin/api/apps/<app>/rollback (noderouter app rollback) keeps the history clear"
        )
    } else {
        return None;
    };
    Some(finding(
        "manifest.version",
        Some("manifest.json"),
        None,
        message,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::warning;

    #[test]
    fn same_number_same_bundle_and_lower_numbers_are_warned_of() {
        assert!(warning("1.0.0", "a", "1.0.1", "b").is_none());
        assert!(warning("1.0.0", "a", "2.0.0-rc.1", "b").is_none());
        let same = warning("1.0.0", "a", "1.0.0", "b").unwrap();
        assert_eq!(same.rule, "manifest.version");
        assert!(
            same.message
                .contains("deployed already with other contents"),
            "{}",
            same.message
        );
        let again = warning("1.0.0", "a", "1.0.0", "a").unwrap();
        assert!(
            again.message.contains("the one deployed already"),
            "{}",
            again.message
        );
        let lower = warning("1.10.0", "a", "1.9.0", "b").unwrap();
        assert!(
            lower.message.contains("lower than the deployed 1.10.0"),
            "{}",
            lower.message
        );
        // A pre-release is lower than its release.
        assert!(warning("1.0.0", "a", "1.0.0-beta", "b").is_some());
    }
}
