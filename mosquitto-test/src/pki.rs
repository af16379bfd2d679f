//! Certificates made at test time with openssl: a CA, a server certificate for 127.0.0.1 and
//! client certificates on demand.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA with a server certificate for 127.0.0.1, and client certificates on demand.
pub struct Pki {
    dir: tempfile::TempDir,
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    /// A new CA and a server certificate (`server.crt`, `server.key`) for 127.0.0.1.
    pub fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let d = pki.dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=Test CA",
            ],
        );
        pki.issue(
            "server",
            "/CN=localhost",
            Some("IP:127.0.0.1,DNS:localhost"),
        );
        pki
    }

    /// Issues `name.crt`/`name.key` with this subject and optional subjectAltName; returns
    /// the serial as openssl prints it.
    pub fn issue(&self, name: &str, subject: &str, san: Option<&str>) -> String {
        let d = self.dir.path();
        let ext = format!("{name}.ext");
        std::fs::write(
            d.join(&ext),
            san.map(|s| format!("subjectAltName={s}\n"))
                .unwrap_or_default(),
        )
        .expect("write ext");
        self.request_and_sign(name, &["-subj", subject], &["-extfile", &ext]);
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in", &format!("{name}.crt")])
            .current_dir(d)
            .output()
            .expect("serial");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_string()
    }

    /// Issues `name.crt`/`name.key` from an openssl `req` config (for subjects `-subj` cannot
    /// express, such as a T61String CN), signed by the CA.
    pub fn issue_with_config(&self, name: &str, config: &[u8]) {
        let cnf = format!("{name}.cnf");
        std::fs::write(self.dir.path().join(&cnf), config).expect("write cnf");
        self.request_and_sign(name, &["-config", &cnf], &[]);
    }

    /// A new P-256 key and a request for it (`subject` options), signed by the CA (`sign`
    /// options added to `openssl x509 -req`).
    fn request_and_sign(&self, name: &str, subject: &[&str], sign: &[&str]) {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut req = vec![
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        req.extend_from_slice(subject);
        openssl(self.dir.path(), &req);
        let mut x509 = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &crt,
        ];
        x509.extend_from_slice(sign);
        openssl(self.dir.path(), &x509);
    }

    /// A file of the PKI (`ca.crt`, `NAME.crt`, `NAME.key`).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The bytes of a file of the PKI.
    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).expect("read pki file")
    }
}
