/* The Mosquitto plugin API as the system installs it (Debian: mosquitto-dev, libmosquitto-dev).
 * build.rs runs bindgen over this file; only types and constants are used from it. Broker
 * functions are resolved at load time from the running broker (see src/plugin/broker.rs). */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
