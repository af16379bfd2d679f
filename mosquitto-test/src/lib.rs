//! Test rig: starts real mosquitto brokers and drives them with real MQTT clients.
//!
//! - [`broker`]: [`Broker`] is a `mosquitto -c <conf>` child process on a free 127.0.0.1 port
//!   (its own temp dir, config, log), in [`Mode::Builtin`] (`password_file`/`acl_file`) or
//!   [`Mode::Plugin`] (`plugin libmqttguard.so` + `plugin_opt_*`). Build one with
//!   [`BrokerConfig`] (or [`Broker::start`] with a raw config body); `port()`, `log()`,
//!   `reload()` (SIGHUP to its pid, waits for the reload in the log), `stop()`; dropped = killed
//!   and reaped by pid. [`BrokerConfig::start_expect_failure`] returns a [`StartFailure`] (exit
//!   status, log, `names_line("acl", 3)`). [`plugin_path`] finds the plugin
//!   (`MQTTGUARD_PLUGIN`, else `$CARGO_TARGET_DIR` or `<workspace>/target`, newest of
//!   release/debug).
//! - [`client`]: a blocking MQTT v3.1.1 / v5 [`Client`] (rumqttc's packet codecs over a
//!   `TcpStream`): exact CONNACK / SUBACK / PUBACK codes, zero-length usernames, wills, and
//!   [`Client::sync`] (PINGREQ round trip) as a deterministic delivery barrier.
//! - [`passwd`]: password files from `mosquitto_passwd` (`$7$`, `$6$ -H sha512`) and argon2id
//!   PHC lines.
//! - [`scenario`]: the differential [`Scenario`] runner (built-in vs plugin, deliberate
//!   differences asserted explicitly).

pub mod broker;
pub mod client;
pub mod passwd;
pub mod pki;
pub mod scenario;

pub use broker::{
    broker_is_2_1, broker_path, broker_version, chroot_root, plugin_path, Broker, BrokerConfig,
    Mode, StartFailure,
};
pub use client::{codes, Client, ConnectOpts, Msg, Proto, Refused};
pub use passwd::{argon2id_hash, argon2id_hash_with, passwd_file, passwd_line, Scheme};
pub use scenario::{not_authorised, suback_denied, Action, Obs, PasswdSpec, Scenario, Step};

/// The `mqttguard` command built with the plugin under test (beside it in the target dir).
pub fn mqttguard_cli() -> std::path::PathBuf {
    plugin_path().with_file_name("mqttguard")
}
