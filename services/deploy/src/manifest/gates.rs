//! The fields that close something to callers, and what counts as a misspelling of one.

/// Fields that close something to callers, by family (the permission is spelt
/// `required_permission` on an app or an action and `permission` on a route): a near
/// miss of any member where one of the family is known is refused.
pub(super) const GATES: [&[&str]; 3] = [
    &["required_permission", "permission"],
    &["webhook"],
    &["secret_name"],
];

/// True when `key` is `gate` but for case, `-`/`_`, or at most two letters changed,
/// added or removed.
pub(super) fn near_miss(key: &str, gate: &str) -> bool {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (norm(key), norm(gate));
    if a.len().abs_diff(b.len()) > 2 {
        return false;
    }
    // Levenshtein distance, one row at a time.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()] <= 2
}
