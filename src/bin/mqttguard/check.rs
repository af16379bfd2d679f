//! `mqttguard check`: would this client be allowed, and which line decided?

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use clap::Args;
use mqttguard::acl::{Access, AclPolicy, Client, Decision, Reason};
use mqttguard::identity::Identity;
use mqttguard::policy::{AuthOutcome, CertificateLogin, Options, Policy};
use serde_json::{json, Value};

use crate::{fail, Status, EXIT_FINDING, EXIT_OK};

/// Decide one ACL question (or many) with the plugin's own code and say which rule decided.
#[derive(Args)]
#[command(
    long_about = "Decide one ACL question with the plugin's own code and say why: the file, line \
                  and text of the deciding rule, \"no rule matched\" (the default is deny), or the \
                  guard that refused (a username or client id containing + or #, no client id). \
                  SUBSCRIBE is checked only when the --config file sets check_subscribe = true \
                  (otherwise, like Mosquitto, it is allowed and each delivery is checked as read).\n\
                  \nWith --passwd and --password, the password is verified as the broker would at \
                  CONNECT: a refused login makes the answer DENY.\n\
                  \nWith --cert (PEM or DER) and a --config file with an [identity] section, the \
                  certificate is mapped to an identity as the plugin does (source field, prefix and \
                  suffix, revocation list, client-id binding): with password = \"ignore\" the \
                  identity becomes the username (--user is then replaced), with password = \
                  \"require\" --user must equal it. A refused certificate makes the answer DENY.\n\
                  \n--queries FILE (or - for stdin) asks many questions, one per line:\n\
                  \n    USER CLIENT_ID ACCESS TOPIC [EXPECT]\n\
                  \nseparated by spaces or tabs; USER is - for a client without username; ACCESS is \
                  read, write, subscribe or unsubscribe; EXPECT, optional, is allow or deny. Empty \
                  lines and lines starting with # are skipped. Topics, usernames and client ids \
                  containing whitespace cannot be written in this format. One result line is \
                  printed per query: `ALLOW|DENY USER CLIENT_ID ACCESS TOPIC: REASON`, followed by \
                  `[UNEXPECTED: expected allow|deny]` when an EXPECT is not met; a summary goes to \
                  stderr. A query fails when it is denied without EXPECT, or when its EXPECT is not \
                  met.\n\
                  \n--json prints one JSON object (one per line with --queries): {\"allowed\", \
                  \"decision\", \"user\", \"client_id\", \"access\", \"topic\", \"acl_allowed\" (the \
                  ACL's answer alone), \"reason\": \
                  {\"kind\": rule|no_match|dangerous_identity|no_client_id|subscribe_unchecked|superuser, \
                  \"description\", and for a rule \"file\", \"line\", \"rule\"}, \"authentication\": \
                  null or {\"outcome\": allow|deny|defer, \"detail\"}, \"certificate\": null or \
                  {\"outcome\": accepted, \"identity\", \"serial\", \"sha256\"} or {\"outcome\": \
                  refused, \"detail\"}}; with --queries also \"line\", \
                  \"expected\" and \"failed\".",
    after_help = "Exit status: 0 allowed (every query passed); 1 denied (some query failed); 2 error \
                  (bad arguments, a policy file the plugin would refuse, a malformed query line).\n\
                  \nExample:\n  mqttguard check --acl /etc/mosquitto/acl --user demo --client-id \
                  c1 --access write --topic demo/lamp"
)]
pub struct CheckArgs {
    /// Mosquitto ACL file (plugin_opt_acl_file).
    #[arg(long, value_name = "FILE")]
    acl: PathBuf,
    /// Mosquitto password file (plugin_opt_password_file): loaded (and so validated); with
    /// --password, the login is checked too.
    #[arg(long, value_name = "FILE")]
    passwd: Option<PathBuf>,
    /// mqttguard TOML config (plugin_opt_config), e.g. for check_subscribe.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Username of the client; omit for a client that connected without one.
    #[arg(long, short = 'u', value_name = "USER")]
    user: Option<String>,
    /// Client id of the client.
    #[arg(
        long,
        short = 'i',
        value_name = "ID",
        required_unless_present = "queries"
    )]
    client_id: Option<String>,
    /// Topic (for subscribe/unsubscribe: topic filter).
    #[arg(
        long,
        short = 't',
        value_name = "TOPIC",
        required_unless_present = "queries"
    )]
    topic: Option<String>,
    /// What the client does: read, write, subscribe or unsubscribe.
    #[arg(long, short = 'a', value_parser = str::parse::<Access>, required_unless_present = "queries")]
    access: Option<Access>,
    /// Password to verify against --passwd (visible to other local users in the process list:
    /// use a test password).
    #[arg(long, short = 'P', value_name = "PASSWORD", requires = "passwd")]
    password: Option<String>,
    /// Client certificate (PEM, or DER) presented by the client: mapped to an identity by the
    /// --config file's [identity] section, with revocation and client-id binding.
    #[arg(long, value_name = "PEM", requires = "config")]
    cert: Option<PathBuf>,
    /// Read queries from FILE (- for stdin), one per line: USER CLIENT_ID ACCESS TOPIC [EXPECT].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["user", "client_id", "topic", "access", "password", "cert"])]
    queries: Option<PathBuf>,
    /// Print JSON (one object per query).
    #[arg(long)]
    json: bool,
}

/// One question.
struct Query {
    user: Option<String>,
    client_id: String,
    access: Access,
    topic: String,
    /// Line in the queries file.
    line: usize,
    expected: Option<bool>,
}

/// One answer.
struct Answer {
    acl: Decision,
    auth: Option<AuthOutcome>,
    cert: Option<CertOutcome>,
}

impl Answer {
    fn allowed(&self) -> bool {
        self.acl.allowed
            && !matches!(self.auth, Some(AuthOutcome::Deny(_)))
            && !matches!(self.cert, Some(CertOutcome::Refused(_)))
    }
}

/// What the broker makes of a client certificate (`--cert`).
enum CertOutcome {
    /// The certificate names this identity, which becomes the username (`password = "ignore"`)
    /// or must equal it (`password = "require"`).
    Accepted(Identity),
    /// The client is refused at CONNECT.
    Refused(String),
}

/// The DER bytes of the first certificate in a PEM file, or the file itself when it is DER.
fn read_certificate(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes);
    }
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        match pem {
            Ok(pem) if pem.label == "CERTIFICATE" => return Ok(pem.contents),
            Ok(_) => continue,
            Err(e) => return Err(format!("{}: not a PEM certificate: {e}", path.display())),
        }
    }
    Err(format!("{}: no CERTIFICATE block", path.display()))
}

/// Applies a certificate with the plugin's own rule ([`Policy::certificate_login`]): the
/// identity replaces the username with `password = "ignore"`, and must equal the username
/// sent with `password = "require"`.
fn apply_certificate(
    policy: &Policy,
    der: &[u8],
    query: &mut Query,
) -> Result<CertOutcome, String> {
    let login = policy
        .certificate_login(der, Some(&query.client_id), query.user.as_deref())
        .ok_or_else(|| "--cert needs an [identity] section in the --config file".to_string())?;
    Ok(match login {
        CertificateLogin::AsIdentity(identity) => {
            query.user = Some(identity.name.clone());
            CertOutcome::Accepted(identity)
        }
        CertificateLogin::CheckPassword(identity) => CertOutcome::Accepted(identity),
        refused => CertOutcome::Refused(
            refused
                .refusal()
                .map(|r| r.strip_prefix("certificate: ").unwrap_or(&r).to_string())
                .unwrap_or_default(),
        ),
    })
}

pub fn run(args: CheckArgs) -> Status {
    let options = Options {
        password_file: args.passwd.clone(),
        acl_file: Some(args.acl.clone()),
        config: args.config.clone(),
    };
    let policy = match Policy::load(&options) {
        Ok(policy) => policy,
        Err(e) => return fail(e),
    };
    let Some(acl) = policy.acl.as_ref() else {
        return fail("no ACL loaded");
    };
    match &args.queries {
        Some(path) => run_queries(&policy, acl, path, args.json),
        None => {
            let (Some(client_id), Some(topic), Some(access)) =
                (args.client_id, args.topic, args.access)
            else {
                return fail("--client-id, --topic and --access are required");
            };
            let mut query = Query {
                user: args.user,
                client_id,
                access,
                topic,
                line: 0,
                expected: None,
            };
            if let Err(e) = query.access.check_topic(&query.topic) {
                return fail(e);
            }
            let cert = match &args.cert {
                None => None,
                Some(path) => {
                    match read_certificate(path)
                        .and_then(|der| apply_certificate(&policy, &der, &mut query))
                    {
                        Ok(outcome) => Some(outcome),
                        Err(e) => return fail(e),
                    }
                }
            };
            let mut answer = decide(&policy, &query, args.password.as_deref());
            answer.cert = cert;
            if args.json {
                println!("{}", to_json(acl, &query, &answer));
            } else {
                print_one(acl, &query, &answer);
            }
            if answer.allowed() {
                EXIT_OK
            } else {
                EXIT_FINDING
            }
        }
    }
}

fn decide(policy: &Policy, query: &Query, password: Option<&str>) -> Answer {
    let client = Client {
        id: Some(&query.client_id),
        username: query.user.as_deref(),
    };
    // `--acl` is required, so there is always an ACL; were there none, answer deny.
    let acl = policy
        .check(&client, &query.topic, query.access)
        .unwrap_or(Decision {
            allowed: false,
            reason: Reason::NoMatch,
            read_client_id: false,
        });
    let auth = password.map(|p| policy.authenticate(query.user.as_deref(), Some(p.as_bytes())));
    Answer {
        acl,
        auth,
        cert: None,
    }
}

fn verdict(allowed: bool) -> &'static str {
    if allowed {
        "ALLOW"
    } else {
        "DENY"
    }
}

/// The reason in words: `FILE:LINE: RULE TEXT`, or the core's description of the guard.
fn reason_text(acl: &AclPolicy, reason: Reason, access: Access) -> String {
    match reason {
        Reason::Rule(_) => acl.describe(reason),
        Reason::NoMatch => "no rule matched (the default is deny)".to_string(),
        Reason::SubscribeUnchecked if access == Access::Unsubscribe => {
            format!("{} (UNSUBSCRIBE is always allowed)", acl.describe(reason))
        }
        Reason::Superuser => {
            "superuser (listed in [identity] superusers of the config: every topic is allowed)"
                .to_string()
        }
        Reason::SubscribeUnchecked => format!(
            "{} (check_subscribe is off, as in Mosquitto: each delivery is checked as read)",
            acl.describe(reason)
        ),
        other => format!("guard: {}", acl.describe(other)),
    }
}

fn auth_text(outcome: AuthOutcome) -> String {
    match outcome {
        AuthOutcome::Allow => "password accepted".to_string(),
        AuthOutcome::Deny(why) => format!("refused: {}", why.as_str()),
        AuthOutcome::Defer => {
            "no username: the broker's allow_anonymous setting decides".to_string()
        }
    }
}

fn print_one(acl: &AclPolicy, query: &Query, answer: &Answer) {
    let who = match &query.user {
        Some(user) => format!("user {user:?}"),
        None => "anonymous client (no username)".to_string(),
    };
    println!(
        "{} {} {:?} for {who}, client id {:?}",
        verdict(answer.allowed()),
        query.access.as_str(),
        query.topic,
        query.client_id
    );
    match &answer.cert {
        Some(CertOutcome::Accepted(identity)) => println!(
            "  certificate: identity {:?} (serial {}, sha256 {})",
            identity.name, identity.serial_hex, identity.sha256_hex
        ),
        Some(CertOutcome::Refused(why)) => {
            println!("  certificate: refused: {why} (the client cannot connect)")
        }
        None => {}
    }
    if let Some(outcome) = answer.auth {
        let consequence = match outcome {
            AuthOutcome::Deny(_) => " (the client cannot connect)",
            _ => "",
        };
        println!("  authentication: {}{consequence}", auth_text(outcome));
    }
    let label = match answer.acl.reason {
        Reason::Rule(_) => "rule",
        _ => "reason",
    };
    println!(
        "  {label}: {}",
        reason_text(acl, answer.acl.reason, query.access)
    );
}

fn to_json(acl: &AclPolicy, query: &Query, answer: &Answer) -> Value {
    let reason = answer.acl.reason;
    let mut reason_json = json!({
        "kind": reason.kind(),
        "description": acl.describe(reason),
    });
    if let Reason::Rule(id) = reason {
        let rule = acl.rule(id);
        reason_json["file"] = json!(acl.file().display().to_string());
        reason_json["line"] = json!(rule.line);
        reason_json["rule"] = json!(rule.text);
    }
    let auth = answer.auth.map(|outcome| {
        json!({
            "outcome": match outcome {
                AuthOutcome::Allow => "allow",
                AuthOutcome::Deny(_) => "deny",
                AuthOutcome::Defer => "defer",
            },
            "detail": auth_text(outcome),
        })
    });
    let cert = answer.cert.as_ref().map(|c| match c {
        CertOutcome::Accepted(identity) => json!({
            "outcome": "accepted",
            "identity": identity.name,
            "serial": identity.serial_hex,
            "sha256": identity.sha256_hex,
        }),
        CertOutcome::Refused(why) => json!({"outcome": "refused", "detail": why}),
    });
    json!({
        "allowed": answer.allowed(),
        "decision": verdict(answer.allowed()).to_ascii_lowercase(),
        "user": query.user,
        "client_id": query.client_id,
        "access": query.access.as_str(),
        "topic": query.topic,
        "acl_allowed": answer.acl.allowed,
        "reason": reason_json,
        "authentication": auth,
        "certificate": cert,
    })
}

fn read_queries(path: &Path) -> Result<Vec<Query>, String> {
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?,
        )
    };
    let name = if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let mut queries = Vec::new();
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let line_no = index + 1;
        let at = |msg: String| format!("{name}:{line_no}: {msg}");
        let line = line.map_err(|e| at(format!("cannot read: {e}")))?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (user, client_id, access, topic, expect) = match fields[..] {
            [u, c, a, t] => (u, c, a, t, None),
            [u, c, a, t, e] => (u, c, a, t, Some(e)),
            _ => {
                return Err(at(format!(
                    "expected `USER CLIENT_ID ACCESS TOPIC [allow|deny]`, got {} fields",
                    fields.len()
                )))
            }
        };
        let access: Access = access.parse().map_err(at)?;
        let expected = match expect {
            None => None,
            Some("allow") => Some(true),
            Some("deny") => Some(false),
            Some(other) => {
                return Err(at(format!(
                    "invalid expectation \"{other}\": expected allow or deny"
                )))
            }
        };
        access.check_topic(topic).map_err(at)?;
        queries.push(Query {
            user: (user != "-").then(|| user.to_string()),
            client_id: client_id.to_string(),
            access,
            topic: topic.to_string(),
            line: line_no,
            expected,
        });
    }
    Ok(queries)
}

fn run_queries(policy: &Policy, acl: &AclPolicy, path: &Path, json: bool) -> Status {
    let queries = match read_queries(path) {
        Ok(q) => q,
        Err(e) => return fail(e),
    };
    let (mut allowed, mut failed) = (0usize, 0usize);
    for query in &queries {
        let answer = decide(policy, query, None);
        let ok = answer.allowed();
        let is_failure = match query.expected {
            Some(expected) => expected != ok,
            None => !ok,
        };
        allowed += usize::from(ok);
        failed += usize::from(is_failure);
        if json {
            let mut value = to_json(acl, query, &answer);
            value["line"] = json!(query.line);
            value["expected"] = json!(query.expected.map(|e| if e { "allow" } else { "deny" }));
            value["failed"] = json!(is_failure);
            println!("{value}");
        } else {
            let mut out = format!(
                "{} {} {} {} {}: {}",
                verdict(ok),
                query.user.as_deref().unwrap_or("-"),
                query.client_id,
                query.access.as_str(),
                query.topic,
                reason_text(acl, answer.acl.reason, query.access)
            );
            if let Some(expected) = query.expected.filter(|&e| e != ok) {
                out.push_str(&format!(
                    " [UNEXPECTED: expected {}]",
                    if expected { "allow" } else { "deny" }
                ));
            }
            println!("{out}");
        }
    }
    eprintln!(
        "{} quer{}: {allowed} allowed, {} denied, {failed} failed",
        queries.len(),
        if queries.len() == 1 { "y" } else { "ies" },
        queries.len() - allowed
    );
    if failed > 0 {
        EXIT_FINDING
    } else {
        EXIT_OK
    }
}
