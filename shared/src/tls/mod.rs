//! TLS to the servers a daemon talks to over HTTP (etcd, the store): the certificate files of
//! one ini section, the ureq TLS configuration made from them, and refused certificates told
//! in words that name the setting to change.
//!
//! `https://` servers are verified against the public CAs unless a CA file is given; the host
//! name is always checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

pub mod certificate_only;

use crate::settings::IniFile;
use crate::{Error, Result};

/// The names of one section's TLS settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsKeys {
    /// The ini section.
    pub section: &'static str,
    /// The CA file's key.
    pub ca: &'static str,
    /// The client certificate's key.
    pub cert: &'static str,
    /// The client key's key.
    pub key: &'static str,
}

/// The TLS files of one section, and the configuration made from them.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    keys: TlsKeys,
    /// PEM file of the CA certificates (one or more) servers are verified against.
    pub ca_file: Option<PathBuf>,
    /// PEM files of a client certificate chain and its key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    config: TlsConfig,
}

impl PartialEq for TlsFiles {
    fn eq(&self, other: &TlsFiles) -> bool {
        (self.keys, &self.ca_file, &self.client_cert)
            == (other.keys, &other.ca_file, &other.client_cert)
    }
}

impl TlsFiles {
    /// No files: the public CAs, no client certificate.
    pub fn none(keys: TlsKeys) -> TlsFiles {
        TlsFiles {
            keys,
            ca_file: None,
            client_cert: None,
            config: TlsConfig::default(),
        }
    }

    /// Reads the files named under `keys` in `ini` (all optional); a file that cannot be read
    /// or holds no certificate (or key) is an error now, not at the first request.
    pub fn from_ini(ini: &IniFile, keys: TlsKeys) -> Result<TlsFiles> {
        let path = |key: &str| ini.optional(keys.section, key).map(PathBuf::from);
        let client_cert = match (path(keys.cert), path(keys.key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                let msg = format!("{} needs {}", keys.cert, keys.key);
                return Err(ini.error(keys.section, keys.key, msg));
            }
            (None, Some(_)) => {
                let msg = format!("{} needs {}", keys.key, keys.cert);
                return Err(ini.error(keys.section, keys.cert, msg));
            }
        };
        // A file that cannot be used is said with the key that names it.
        let named = |key: &'static str| move |e: Error| ini.error(keys.section, key, e.to_string());
        let mut tls = TlsConfig::builder();
        let ca_file = path(keys.ca);
        if let Some(ca) = &ca_file {
            let roots = certificates(ca).map_err(named(keys.ca))?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(roots)));
        }
        if let Some((cert, key)) = &client_cert {
            let chain = certificates(cert).map_err(named(keys.cert))?;
            let key = private_key(key).map_err(named(keys.key))?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        Ok(TlsFiles {
            keys,
            ca_file,
            client_cert,
            config: tls.build(),
        })
    }

    /// The ureq TLS configuration.
    pub fn config(&self) -> TlsConfig {
        self.config.clone()
    }

    /// What went wrong talking to a server, in words: a refused certificate says which check
    /// failed and which of these settings governs it, followed by the library's message.
    pub fn describe(&self, error: &ureq::Error) -> String {
        self.refused(error).unwrap_or_else(|| error.to_string())
    }

    /// [`TlsFiles::describe`], if the error is a refused certificate.
    pub fn refused(&self, error: &ureq::Error) -> Option<String> {
        let text = error.to_string();
        let TlsKeys {
            section,
            ca,
            cert,
            key,
        } = self.keys;
        // rustls names some checks by their variant (UnknownIssuer) and words others
        // ("certificate not valid for name ..."): both forms are matched.
        let lower = text.to_lowercase();
        let said = |forms: &[&str]| forms.iter().any(|f| lower.contains(f));
        let cause = match () {
            _ if said(&["unknownissuer"]) => format!(
                "its certificate is not signed by a CA this host trusts: set [{section}] {ca} to the CA that signed it"
            ),
            _ if said(&["notvalidforname", "not valid for name"]) => {
                "its certificate is not valid for the host name in the URL".to_string()
            }
            _ if said(&["notvalidyet", "not valid yet"]) => {
                "its certificate is not valid yet (check the clocks)".to_string()
            }
            _ if said(&["expired"]) => "its certificate has expired".to_string(),
            _ if said(&["certificaterequired"]) => format!(
                "it asks for a client certificate: set [{section}] {cert} and {key}"
            ),
            _ if said(&["unknownca", "badcertificate"]) => {
                format!("it refuses our client certificate ([{section}] {cert})")
            }
            _ => return None,
        };
        Some(format!("TLS: {cause} ({text})"))
    }
}

/// An error about the file at `path`.
fn file_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, "cannot read", &e))
}

/// Every certificate of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = read_pem(path)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(file_error(path, format!("not a valid PEM file: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in it (PEM expected)"));
    }
    Ok(certs)
}

/// The private key of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKey<'static>> {
    let pem = read_pem(path)?;
    crate::secret::warn_if_readable_by_others(path);
    PrivateKey::from_pem(&pem).map_err(|e| file_error(path, format!("no private key in it: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: TlsKeys = TlsKeys {
        section: "etcd",
        ca: "ca_file",
        cert: "cert_file",
        key: "key_file",
    };

    fn files(text: &str) -> Result<TlsFiles> {
        TlsFiles::from_ini(&IniFile::parse("agent.ini", text)?, KEYS)
    }

    #[test]
    fn settings_and_their_errors() {
        assert_eq!(files("").unwrap(), TlsFiles::none(KEYS));
        let e = files("[etcd]\ncert_file = /x.pem\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "agent.ini: [etcd] key_file: cert_file needs key_file"
        );
        let e = files("[etcd]\nca_file = /nonexistent/ca.pem\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("agent.ini: [etcd] ca_file: /nonexistent/ca.pem: cannot read"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("lc-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "hello\n").unwrap();
        let e = files(&format!("[etcd]\nca_file = {}\n", ca.display())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "agent.ini: [etcd] ca_file: {}: no certificate in it (PEM expected)",
                ca.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
