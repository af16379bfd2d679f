//! The TOML configuration file (`plugin_opt_config`): arbitrary bytes; when they parse, the
//! `[identity]` section is validated as at load.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mqttguard::config::Config;

fuzz_target!(|data: &[u8]| {
    match Config::parse(Path::new("fuzz.toml"), data) {
        Ok(config) => {
            if let Some(identity) = &config.identity {
                let _ = identity.validate();
                for name in &identity.superusers {
                    let _ = identity.is_superuser(name);
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
