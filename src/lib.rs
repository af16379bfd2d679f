//! mqttguard: an authentication and ACL plugin for Mosquitto 2.x.
//!
//! The policy core (everything except the `plugin` module) is safe Rust with no FFI: it parses
//! Mosquitto's password and ACL files, compiles them into matchers, verifies hashes and
//! decides. The plugin layer adapts the broker's C callbacks onto that core.

#![forbid(unsafe_op_in_unsafe_fn)]
// Only the plugin layer talks to C; the policy core is safe Rust.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod acl;
pub mod cache;
pub mod config;
pub(crate) mod denial;
pub mod error;
pub mod identity;
pub mod lint;
pub mod memo;
pub(crate) mod metrics;
pub mod passwd;
#[allow(unsafe_code)]
mod plugin;
pub mod policy;
pub(crate) mod pool;
pub(crate) mod ratelimit;
pub(crate) mod throttle;
pub mod topic;
pub(crate) mod watch;
