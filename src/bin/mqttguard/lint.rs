//! `mqttguard lint`: the plugin's parse plus warnings (logic in `mqttguard::lint`).

use std::path::PathBuf;

use clap::Args;
use mqttguard::lint::{lint_files, Inputs};

use crate::{fail, Status};

/// Parse policy files as the plugin does and warn about rules that do not do what they seem to.
#[derive(Args)]
#[command(
    long_about = "Parse the policy files exactly as the plugin does (every error with file:line: the \
                  broker would refuse to start), then warn, with file:line, about:\n\
                  \n  - allow rules that never grant anything because a deny rule in the same list \
                  covers every topic they match, and duplicate rules;\
                  \n  - `topic read` / `topic write` with no topic (Mosquitto reads them as readwrite \
                  on a topic named read / write);\
                  \n  - patterns without %c or %u, %c/%u in `topic` rules (not substituted), \
                  patterns written among the rules of a `user` block (they apply to everyone);\
                  \n  - `user` blocks with no topic rules;\
                  \n  - with --acl and --passwd: users of the ACL missing from the password file and \
                  the reverse;\
                  \n  - `$6$` hashes, `$7$` hashes with fewer than 1000 iterations, a password file \
                  readable by every local user;\
                  \n  - whatever else the plugin warns about when it loads the files (e.g. a \
                  superuser known to neither file).\n\
                  \nWhen every file parses, they are also loaded together as the plugin loads them \
                  (the config's [identity] section and its revocation list included), so lint \
                  passes nothing the broker would refuse.\n\
                  \nOutput: one line per finding, `FILE:LINE: error|warning: MESSAGE [code]`, then a \
                  summary line on stderr. With --json, one JSON object on stdout: \
                  {\"errors\": N, \"warnings\": N, \"findings\": [{\"severity\", \"file\", \"line\", \
                  \"code\", \"message\"}]} (line 0: the whole file).",
    after_help = "Exit status: 0 clean; 1 warnings only; 2 errors (a file the plugin would refuse, \
                  an unreadable file, or bad arguments)."
)]
pub struct LintArgs {
    /// Mosquitto ACL file (plugin_opt_acl_file).
    #[arg(long, value_name = "FILE")]
    acl: Option<PathBuf>,
    /// Mosquitto password file (plugin_opt_password_file).
    #[arg(long, value_name = "FILE")]
    passwd: Option<PathBuf>,
    /// mqttguard TOML config (plugin_opt_config).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the findings as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: LintArgs) -> Status {
    if args.acl.is_none() && args.passwd.is_none() && args.config.is_none() {
        return fail("nothing to lint: give --acl, --passwd and/or --config");
    }
    let report = lint_files(Inputs {
        acl: args.acl.as_deref(),
        passwd: args.passwd.as_deref(),
        config: args.config.as_deref(),
    });
    if args.json {
        let value = serde_json::json!({
            "errors": report.errors(),
            "warnings": report.warnings(),
            "findings": report.findings,
        });
        println!("{value}");
    } else {
        for finding in &report.findings {
            println!("{finding}");
        }
        eprintln!(
            "{} error{}, {} warning{}",
            report.errors(),
            if report.errors() == 1 { "" } else { "s" },
            report.warnings(),
            if report.warnings() == 1 { "" } else { "s" }
        );
    }
    report.exit_code() as Status
}
