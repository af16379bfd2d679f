//! `mqttguard`: hash passwords, explain any ACL decision, lint a policy before it goes live.
//!
//! Every decision and every parse is the plugin's own code (the `mqttguard` library); this
//! binary only reads arguments, calls it and prints.

mod check;
mod lint;
mod passwd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status of a subcommand.
pub type Status = u8;
/// Allowed / written / clean.
pub const EXIT_OK: Status = 0;
/// Denied (check) / warnings only (lint).
pub const EXIT_FINDING: Status = 1;
/// Error: bad arguments, unreadable or broken file, nothing written.
pub const EXIT_ERROR: Status = 2;

#[derive(Parser)]
#[command(
    name = "mqttguard",
    version,
    about = "Hash passwords, explain ACL decisions and lint policies for the mqttguard Mosquitto plugin",
    long_about = "Hash passwords, explain ACL decisions and lint policies for the mqttguard \
                  Mosquitto plugin.\n\nThe files are Mosquitto's own password_file and acl_file \
                  formats, parsed and decided by the same code the plugin runs in the broker.",
    after_help = "Exit status: 0 success / allowed / clean; 1 denied (check) or warnings only \
                  (lint); 2 error (bad arguments, unreadable or invalid file).\n\
                  Run `mqttguard <COMMAND> --help` for each command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Passwd(passwd::PasswdArgs),
    Check(check::CheckArgs),
    Lint(lint::LintArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Passwd(args) => passwd::run(args),
        Command::Check(args) => check::run(args),
        Command::Lint(args) => lint::run(args),
    };
    ExitCode::from(status)
}

/// Prints `mqttguard: error: ...` to stderr and returns [`EXIT_ERROR`].
pub fn fail(message: impl std::fmt::Display) -> Status {
    eprintln!("mqttguard: error: {message}");
    EXIT_ERROR
}
