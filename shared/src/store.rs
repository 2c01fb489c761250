//! How this host reaches the store (Elasticsearch/OpenSearch): the `[elasticsearch]` section of
//! the transfer's ini (also read by `logctl -c`), and the HTTP agent built from it.
//!
//! `elasticsearch_config` in etcd says which nodes and which credentials, for the whole fleet;
//! what is per host stays in the ini: the CA that signed the store's certificate, a client
//! certificate, and secrets kept in files rather than in etcd.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::collect::EsConfig;
use crate::settings::IniFile;
use crate::{Error, Result};

const SECTION: &str = "elasticsearch";

/// `[elasticsearch]`: TLS and secrets for the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSettings {
    /// `ca_file`: PEM file of the certificates (one or more) that `https://` nodes are
    /// verified against, in place of the public CAs.
    pub ca_file: Option<PathBuf>,
    /// `client_cert` and `client_key`: PEM files of a certificate chain and its key, for a
    /// store that asks for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `password_file`: the basic-auth password, in place of the one in etcd.
    pub password_file: Option<PathBuf>,
    /// `api_key_file`: the API key, in place of the one in etcd.
    pub api_key_file: Option<PathBuf>,
}

impl StoreSettings {
    /// Reads `[elasticsearch]` (every key optional). `verification` must be `full`: the
    /// host name is always checked.
    pub fn from_ini(ini: &IniFile) -> Result<StoreSettings> {
        let path = |key: &str| ini.optional(SECTION, key).map(PathBuf::from);
        let verification = ini.string_or(SECTION, "verification", "full");
        if verification != "full" {
            return Err(ini.error(
                SECTION,
                "verification",
                format!("{verification:?}: only \"full\" (certificate and host name) is supported"),
            ));
        }
        let client_cert = match (path("client_cert"), path("client_key")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ini.error(SECTION, "client_key", "client_cert needs client_key"))
            }
            (None, Some(_)) => {
                return Err(ini.error(SECTION, "client_cert", "client_key needs client_cert"))
            }
        };
        let settings = StoreSettings {
            ca_file: path("ca_file"),
            client_cert,
            password_file: path("password_file"),
            api_key_file: path("api_key_file"),
        };
        // Files that are wrong are said at start, not at the first request.
        settings.tls()?;
        settings.secrets()?;
        Ok(settings)
    }

    /// The HTTP agent for the store: timeouts as given, answers of any status returned (not
    /// errors), TLS as set here.
    pub fn agent(&self, connect: Option<Duration>, global: Duration) -> Result<ureq::Agent> {
        let config = ureq::Agent::config_builder()
            .timeout_connect(connect)
            .timeout_global(Some(global))
            .http_status_as_error(false)
            .tls_config(self.tls()?)
            .build();
        Ok(config.into())
    }

    /// `es` with the secrets of `password_file` and `api_key_file` in place of etcd's.
    pub fn with_secrets(&self, mut es: EsConfig) -> Result<EsConfig> {
        let (password, api_key) = self.secrets()?;
        if password.is_some() {
            es.password = password;
        }
        if api_key.is_some() {
            es.api_key = api_key;
        }
        Ok(es)
    }

    fn secrets(&self) -> Result<(Option<String>, Option<String>)> {
        let read = |path: &Option<PathBuf>| path.as_deref().map(secret_file).transpose();
        Ok((read(&self.password_file)?, read(&self.api_key_file)?))
    }

    fn tls(&self) -> Result<TlsConfig> {
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &self.ca_file {
            let certs = certificates(ca)?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        if let Some((cert, key)) = &self.client_cert {
            tls = tls.client_cert(Some(ClientCert::new_with_certs(
                &certificates(cert)?,
                private_key(key)?,
            )));
        }
        Ok(tls.build())
    }
}

/// What went wrong talking to a node, in words: TLS failures say which certificate check
/// failed and which setting governs it, followed by the library's own message.
pub fn describe(error: &ureq::Error) -> String {
    tls_failure(error).unwrap_or_else(|| error.to_string())
}

/// [`describe`], if the error is a refused certificate.
pub fn tls_failure(error: &ureq::Error) -> Option<String> {
    let text = error.to_string();
    let cause = [
        ("UnknownIssuer", "its certificate is not signed by a CA this host trusts: set [elasticsearch] ca_file to the CA that signed it"),
        ("NotValidForName", "its certificate is not valid for the host name in url_address"),
        ("Expired", "its certificate has expired"),
        ("NotValidYet", "its certificate is not valid yet (check the clocks)"),
        ("CertificateRequired", "it asks for a client certificate: set [elasticsearch] client_cert and client_key"),
        ("UnknownCA", "it does not trust our client certificate"),
    ]
    .into_iter()
    .find(|(code, _)| text.contains(code))?;
    Some(format!("TLS: {} ({text})", cause.1))
}

/// A secret kept in a file: its first line. A file others may read is warned about.
fn secret_file(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read the secret", &e))?;
    warn_if_readable_by_others(path);
    let secret = text.lines().next().unwrap_or_default().trim().to_string();
    if secret.is_empty() {
        return Err(pem_error(path, "the secret file is empty"));
    }
    Ok(secret)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            log::warn!(
                "{}: holds a secret and every user can read it (chmod o-r)",
                path.display()
            );
        }
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, "cannot read", &e))
}

/// An error about the file at `path`.
fn pem_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Every certificate of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = read_pem(path)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(pem_error(path, format!("not a valid PEM file: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate in it (PEM expected)"));
    }
    Ok(certs)
}

/// The private key of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKey<'static>> {
    let pem = read_pem(path)?;
    warn_if_readable_by_others(path);
    PrivateKey::from_pem(&pem).map_err(|e| pem_error(path, format!("no private key in it: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<StoreSettings> {
        StoreSettings::from_ini(&IniFile::parse("transfer.ini", text)?)
    }

    #[test]
    fn settings_and_their_errors() {
        assert_eq!(settings("").unwrap(), StoreSettings::default());
        let e = settings("[elasticsearch]\nverification = none\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "transfer.ini: [elasticsearch] verification: \"none\": only \"full\" (certificate and host name) is supported"
        );
        let e = settings("[elasticsearch]\nclient_cert = /x.pem\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "transfer.ini: [elasticsearch] client_key: client_cert needs client_key"
        );
        let e = settings("[elasticsearch]\nca_file = /nonexistent/ca.pem\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/ca.pem: cannot read"),
            "{e}"
        );
    }

    fn es_config() -> EsConfig {
        EsConfig {
            urls: vec!["https://a:9200".into()],
            api_key: None,
            username: Some("elastic".into()),
            password: Some("from etcd".into()),
        }
    }

    #[test]
    fn files_that_are_not_pem_are_named() {
        let dir = std::env::temp_dir().join(format!("lc-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "hello\n").unwrap();
        let e = settings(&format!("[elasticsearch]\nca_file = {}\n", ca.display())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: no certificate in it (PEM expected)", ca.display())
        );
        let secret = dir.join("password");
        std::fs::write(&secret, "s3cret\nignored\n").unwrap();
        let s = settings(&format!(
            "[elasticsearch]\npassword_file = {}\n",
            secret.display()
        ))
        .unwrap();
        assert_eq!(
            s.with_secrets(es_config()).unwrap().password.as_deref(),
            Some("s3cret")
        );
        std::fs::write(&secret, "\n").unwrap();
        let e = s.with_secrets(es_config()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: the secret file is empty", secret.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
