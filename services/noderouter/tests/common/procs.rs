//! Processes of the machine, as the tests look at them.

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}
