//! `runner.alive`: a runner's heartbeat, with the sync calls it is running.
//!
//! Once a second each runner publishes (core NATS) the request ids of the bus calls it
//! holds, one per line after a first line with its own id: `runner-1a2b\n<request
//! id>\n<request id>`. A runner holding no call still beats, with its id alone. A gateway
//! waiting for a call can then tell a runner that died with the call from a call that is
//! merely slow. Request ids are header values (no line breaks, no spaces), so the text
//! reads one way only. A runner with more calls than fit one message sends several, each
//! starting with its id.

/// Most bytes of one heartbeat message (well under any NATS `max_payload`).
pub const MAX_BYTES: usize = 64 * 1024;

/// The heartbeat messages of `runner` holding the calls `keys`: one, or several when
/// they exceed [`MAX_BYTES`]. An empty key is skipped.
pub fn encode<'a>(runner: &str, keys: impl IntoIterator<Item = &'a str>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut msg = runner.as_bytes().to_vec();
    for key in keys.into_iter().filter(|k| !k.is_empty()) {
        if msg.len() + 1 + key.len() > MAX_BYTES && msg.len() > runner.len() {
            out.push(std::mem::replace(&mut msg, runner.as_bytes().to_vec()));
        }
        msg.push(b'\n');
        msg.extend_from_slice(key.as_bytes());
    }
    out.push(msg);
    out
}

/// The runner id and the request ids of one heartbeat; `None` when it names no runner.
pub fn decode(payload: &[u8]) -> Option<(&str, impl Iterator<Item = &str>)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut lines = text.split('\n');
    let runner = lines.next().filter(|r| !r.is_empty())?;
    Some((runner, lines.filter(|k| !k.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_reads_back_as_written() {
        let msgs = encode("runner-1", ["a", "", "b-2"]);
        assert_eq!(msgs, vec![b"runner-1\na\nb-2".to_vec()]);
        let (runner, keys) = decode(&msgs[0]).unwrap();
        assert_eq!(runner, "runner-1");
        assert_eq!(keys.collect::<Vec<_>>(), ["a", "b-2"]);
    }

    #[test]
    fn a_runner_without_calls_still_names_itself() {
        let msgs = encode("runner-1", []);
        let (runner, keys) = decode(&msgs[0]).unwrap();
        assert_eq!(runner, "runner-1");
        assert_eq!(keys.count(), 0);
        assert!(decode(b"").is_none());
        assert!(decode(b"\nkey").is_none());
    }

    #[test]
    fn many_calls_split_into_messages_that_each_name_the_runner() {
        let keys: Vec<String> = (0..5000).map(|i| format!("{i:036}")).collect();
        let msgs = encode("r", keys.iter().map(String::as_str));
        assert!(msgs.len() > 1);
        let mut back = Vec::new();
        for m in &msgs {
            assert!(m.len() <= MAX_BYTES, "{}", m.len());
            let (runner, ks) = decode(m).unwrap();
            assert_eq!(runner, "r");
            back.extend(ks.map(str::to_owned));
        }
        assert_eq!(back, keys);
    }
}
