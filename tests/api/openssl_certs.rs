//! Certificates made the way admins make them, by the `openssl` command line, at run time in
//! a temp directory: self-signed (CA:TRUE, as `openssl req -x509` makes it), a private CA and
//! the leaves it issues with any dates (`openssl ca`), and fingerprints as openssl prints them.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// What the channels connect to, and what the test certificates name (with 127.0.0.1).
pub const SAN: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1";

/// Runs `openssl` in `dir`, failing the test with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run the openssl command line");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A certificate and its key, in PEM.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// Reads `{name}.pem` and `{name}.key` from `dir`.
fn read(dir: &Path, name: &str) -> Pem {
    Pem {
        cert: std::fs::read_to_string(dir.join(format!("{name}.pem"))).unwrap(),
        key: std::fs::read_to_string(dir.join(format!("{name}.key"))).unwrap(),
    }
}

/// What an admin does for a server of their own: `openssl req -x509`, which makes a
/// self-signed certificate with CA:TRUE (OpenSSL's default `v3_ca` extensions).
pub fn self_signed(dir: &Path, name: &str) -> Pem {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=mail.example",
            "-addext",
            SAN,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
    let pem = read(dir, name);
    let text = openssl(
        dir,
        &["x509", "-in", &format!("{name}.pem"), "-noout", "-text"],
    );
    assert!(
        text.contains("CA:TRUE"),
        "openssl made a CA:TRUE certificate: {text}"
    );
    pem
}

/// The SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it (`AB:CD:…`).
pub fn openssl_fingerprint(dir: &Path, cert: &str) -> String {
    std::fs::write(dir.join("fp.pem"), cert).unwrap();
    let out = openssl(
        dir,
        &["x509", "-in", "fp.pem", "-noout", "-fingerprint", "-sha256"],
    );
    out.trim().split_once('=').unwrap().1.to_owned()
}

/// A private CA made with `openssl`, issuing leaves with `openssl ca` (which, unlike
/// OpenSSL 3.0's `x509 -req`, sets any start and end date: expired and future certificates).
pub struct PrivateCa {
    dir: TempDir,
    pub pem: String,
}

impl PrivateCa {
    pub fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "365",
                "-subj",
                "/CN=Acme Private CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(
            d.join("ca.cnf"),
            "[ca]\ndefault_ca = acme\n[acme]\ndir = .\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\nprivate_key = ca.key\ncertificate = ca.pem\ndefault_md = sha256\n\
             policy = anything\nunique_subject = no\n[anything]\ncommonName = supplied\n",
        )
        .unwrap();
        let pem = std::fs::read_to_string(d.join("ca.pem")).unwrap();
        Self { dir, pem }
    }

    /// A server certificate for `san`, valid from `start` to `end` (`YYYYMMDDHHMMSSZ`).
    pub fn issue(&self, name: &str, san: &str, start: &str, end: &str) -> Pem {
        let d = self.dir.path();
        std::fs::write(
            d.join(format!("{name}.ext")),
            format!("[leaf]\n{san}\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n"),
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-extfile",
                &format!("{name}.ext"),
                "-extensions",
                "leaf",
                "-startdate",
                start,
                "-enddate",
                end,
                "-in",
                &format!("{name}.csr"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        read(d, name)
    }

    /// A leaf for the test server's names, valid now.
    pub fn current(&self, name: &str) -> Pem {
        self.current_for(name, SAN)
    }

    /// A leaf for `san`, valid from 30 days ago to 30 days ahead.
    pub fn current_for(&self, name: &str, san: &str) -> Pem {
        let day =
            |d: chrono::Duration| (chrono::Utc::now() + d).format("%Y%m%d%H%M%SZ").to_string();
        self.issue(
            name,
            san,
            &day(chrono::Duration::days(-30)),
            &day(chrono::Duration::days(30)),
        )
    }
}
