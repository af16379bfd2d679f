//! Generates Rust types for the Mosquitto plugin API from the system headers.
//!
//! Only structs and constants are taken from the headers; broker functions are looked up at
//! run time (see `src/plugin/broker.rs`), so the library has no undefined symbols and loads
//! into Mosquitto 2.0 and 2.1 alike.

use std::env;
use std::path::{Path, PathBuf};

const HEADERS: [(&str, &str); 3] = [
    ("mosquitto.h", "libmosquitto-dev"),
    ("mosquitto_broker.h", "mosquitto-dev"),
    ("mosquitto_plugin.h", "mosquitto-dev"),
];

fn main() {
    println!("cargo:rerun-if-changed=include/mqttguard_wrapper.h");
    println!("cargo:rerun-if-env-changed=MOSQUITTO_INCLUDE_DIR");

    let include_dir = env::var_os("MOSQUITTO_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    for (header, package) in HEADERS {
        let path = include_dir.join(header);
        if !path.is_file() {
            fail(&format!(
                "{} not found. Install the Debian package `{package}` \
                 (apt-get install mosquitto-dev libmosquitto-dev), or set MOSQUITTO_INCLUDE_DIR \
                 to the directory that holds the Mosquitto headers.",
                path.display()
            ));
        }
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default()).join("mosquitto_sys.rs");
    generate(&include_dir, &out);
    build_cert_shim();
}

/// The small C shim that encodes and frees the broker's X509 objects, linked dynamically
/// against the system libcrypto (the same one the broker uses).
fn build_cert_shim() {
    println!("cargo:rerun-if-changed=csrc/cert.c");
    if !Path::new("/usr/include/openssl/x509.h").is_file()
        && env::var_os("OPENSSL_INCLUDE_DIR").is_none()
    {
        fail("openssl/x509.h not found. Install the Debian package `libssl-dev` (apt-get install libssl-dev).");
    }
    let mut build = cc::Build::new();
    build.file("csrc/cert.c").warnings(true);
    if let Some(dir) = env::var_os("OPENSSL_INCLUDE_DIR") {
        build.include(dir);
    }
    build.compile("mqttguard_cert");
    println!("cargo:rustc-link-lib=dylib=crypto");
}

fn generate(include_dir: &Path, out: &Path) {
    let builder = bindgen::Builder::default()
        .header("include/mqttguard_wrapper.h")
        .clang_arg(format!("-I{}", include_dir.display()))
        .allowlist_type("mosquitto_evt_.*")
        .allowlist_type("mosquitto_opt")
        .allowlist_type("mosquitto_plugin_id_t")
        .allowlist_type("mosq_err_t")
        .allowlist_type("mosquitto_plugin_event")
        .allowlist_var("MOSQ_ACL_.*")
        .allowlist_var("MOSQ_LOG_.*")
        .allowlist_var("MOSQ_EVT_.*")
        .allowlist_var("MOSQ_AUTH_PLUGIN_VERSION")
        .allowlist_var("MOSQ_PLUGIN_VERSION")
        .opaque_type("mosquitto")
        .opaque_type("mosquitto_plugin_id_t")
        .opaque_type("mqtt5__property")
        .prepend_enum_name(false)
        .derive_default(false)
        .layout_tests(true)
        .generate_comments(false);

    // bindgen panics when it cannot load libclang; turn that into an actionable message.
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    match generated {
        Ok(Ok(bindings)) => {
            if let Err(e) = bindings.write_to_file(out) {
                fail(&format!("cannot write {}: {e}", out.display()));
            }
        }
        Ok(Err(e)) => fail(&format!("bindgen failed on the Mosquitto headers: {e}")),
        Err(_) => fail(
            "bindgen could not load libclang. Install the Debian package `libclang-dev` \
             (apt-get install libclang-dev), or set LIBCLANG_PATH.",
        ),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("\nerror: mqttguard build: {message}\n");
    std::process::exit(1);
}
