//! The Mosquitto plugin layer. The only module with `unsafe`.
