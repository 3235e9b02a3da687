//! Standard output of the command-line tool. `println!` panics when the reader has gone
//! (`noderouter app versions x | head -1`); these end the process quietly instead, with
//! the status a shell gives a process ended by SIGPIPE (141), as other Unix tools do.
//! `up` is a server, not a filter: its banner ignores a closed output ([`say`]).

/// Writes one formatted piece to standard output, flushed. A closed pipe exits with
/// 141 and no message; any other write error exits with 1 and says so on stderr.
pub fn write(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("Error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Writes one formatted piece to standard output for a process that must go on when
/// nobody reads it (`up`'s banner): a write error is ignored, so the platform still stops
/// in order (its NATS, its drain) rather than exiting on the spot.
pub fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// `println!` for `up`'s banner (see [`say`]).
macro_rules! sayln {
    () => {
        $crate::out::say(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::out::say(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` for the tool's answers (see the module).
macro_rules! out {
    ($($t:tt)*) => {
        $crate::out::write(format_args!($($t)*))
    };
}

/// `println!` for the tool's answers (see the module).
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($t)*)))
    };
}
