//! mqttguard: an authentication and ACL plugin for Mosquitto 2.x.
//!
//! The policy core (everything except [`plugin`]) is safe Rust with no FFI: it parses
//! Mosquitto's password and ACL files, compiles them into matchers, verifies hashes and
//! decides. The plugin layer adapts the broker's C callbacks onto that core.

#![forbid(unsafe_op_in_unsafe_fn)]
// Only the plugin layer talks to C; the policy core is safe Rust.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod acl;
pub mod cache;
pub mod config;
pub mod denial;
pub mod error;
pub mod identity;
pub mod lint;
pub mod metrics;
pub mod passwd;
#[allow(unsafe_code)]
pub mod plugin;
pub mod policy;
pub mod pool;
pub mod ratelimit;
pub mod throttle;
pub mod topic;
pub mod watch;
