//! What every check reports: findings (rule, file, line, message) and refusals (an HTTP
//! status that fits, a one-line summary and every finding).

pub use nr_contracts::requests::Finding;

pub fn finding(
    rule: &str,
    file: Option<&str>,
    line: Option<u32>,
    message: impl Into<String>,
) -> Finding {
    Finding {
        rule: rule.to_owned(),
        file: file.map(str::to_owned),
        line,
        message: message.into(),
    }
}

/// A refused bundle or request.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// 400 unreadable, 404 unknown app or version, 409 conflict, 413 too large,
    /// 422 breaks a rule of the contract, 500 the platform failed.
    pub status: u16,
    pub error: String,
    pub details: Vec<Finding>,
    /// What the checks that ran before the refusal would have warned of, so the author
    /// sees every finding at once.
    pub warnings: Vec<Finding>,
}

impl Refused {
    /// A refusal with one finding; its message is the summary.
    pub fn one(
        status: u16,
        rule: &str,
        file: Option<&str>,
        line: Option<u32>,
        message: impl Into<String>,
    ) -> Refused {
        let message = message.into();
        Refused {
            status,
            error: message.clone(),
            details: vec![finding(rule, file, line, message)],
            warnings: Vec::new(),
        }
    }

    /// A refusal with several findings, summarised by the first.
    pub fn many(status: u16, details: Vec<Finding>) -> Refused {
        let error = match details.as_slice() {
            [] => "refused".to_owned(),
            [one] => one.message.clone(),
            [first, rest @ ..] => format!(
                "{} (and {} more problem{}; see details)",
                first.message,
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        };
        Refused {
            status,
            error,
            details,
            warnings: Vec::new(),
        }
    }

    /// The refusal, also carrying `warnings` (the bundle's other findings).
    pub fn with_warnings(mut self, warnings: &[Finding]) -> Refused {
        self.warnings.extend_from_slice(warnings);
        self
    }

    /// 503: the app event log (NATS JetStream) did not answer, as while a node is down
    /// and the stream elects a new leader; nothing was changed, and a retry will do.
    pub fn event_log(error: impl std::fmt::Display) -> Refused {
        tracing::warn!(error = %error, "the app event log did not answer");
        Refused {
            status: 503,
            error: format!(
                "the app event log (NATS JetStream) did not answer, as while a NATS node is down and its streams elect new leaders; nothing was changed: retry shortly ({error})"
            ),
            details: vec![],
            warnings: Vec::new(),
        }
    }

    /// The platform failed; nothing the author can fix. The cause is kept in `error`
    /// for logs and the local CLI; the gateway never echoes a 5xx's text to a caller
    /// (but a 503's, which says what to do).
    pub fn internal(error: impl std::fmt::Display) -> Refused {
        tracing::error!(error = %error, "deploy failed inside the platform");
        Refused {
            status: 500,
            error: format!("deploy failed inside the platform: {error}"),
            details: vec![],
            warnings: Vec::new(),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error, self.status)
    }
}

impl std::error::Error for Refused {}

/// `file:line` (or the file alone) for a finding, as the CLI prints it.
pub fn location(f: &Finding) -> Option<String> {
    match (&f.file, f.line) {
        (Some(file), Some(line)) => Some(format!("{file}:{line}")),
        (Some(file), None) => Some(file.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_with_several_findings_is_summarised_by_the_first() {
        let r = Refused::many(
            422,
            vec![
                finding("a", None, None, "first thing"),
                finding("b", None, None, "second thing"),
                finding("c", None, None, "third thing"),
            ],
        );
        assert_eq!(r.error, "first thing (and 2 more problems; see details)");
        assert_eq!(r.details.len(), 3);
        assert_eq!(Refused::one(400, "x", None, None, "only").error, "only");
    }
}
