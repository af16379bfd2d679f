//! Test rig: starts real mosquitto brokers and drives them with real MQTT clients.
