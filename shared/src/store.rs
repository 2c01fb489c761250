//! How this host reaches the store (Elasticsearch/OpenSearch): the `[elasticsearch]` section of
//! the transfer's ini (also read by `logctl -c`), and the HTTP agent built from it.
//!
//! `elasticsearch_config` in etcd says which nodes and which credentials, for the whole fleet;
//! what is per host stays in the ini: the CA that signed the store's certificate, a client
//! certificate, and secrets kept in files rather than in etcd.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, TcpConnector};

use crate::collect::EsConfig;
use crate::secret;
use crate::settings::IniFile;
use crate::tls::certificate_only::{self, CertificateOnly};
use crate::tls::{TlsFiles, TlsKeys};
use crate::Result;

const SECTION: &str = "elasticsearch";

/// The names of the store's TLS settings.
pub const TLS_KEYS: TlsKeys = TlsKeys {
    section: SECTION,
    ca: "ca_file",
    cert: "client_cert",
    key: "client_key",
};

/// `verification`: what is checked of the store's certificate.
#[derive(Debug, Clone)]
pub enum Verification {
    /// `full` (the default): the chain and the host name.
    Full,
    /// `certificate`: the chain only; the TLS configuration that does so.
    Certificate(Arc<rustls::ClientConfig>),
}

impl PartialEq for Verification {
    fn eq(&self, other: &Verification) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// `[elasticsearch]`: TLS and secrets for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSettings {
    /// `ca_file`, `client_cert` and `client_key`.
    pub tls: TlsFiles,
    /// `verification`.
    pub verification: Verification,
    /// `password_file`: the basic-auth password, in place of the one in etcd.
    pub password_file: Option<PathBuf>,
    /// `api_key_file`: the API key, in place of the one in etcd.
    pub api_key_file: Option<PathBuf>,
}

impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings {
            tls: TlsFiles::none(TLS_KEYS),
            verification: Verification::Full,
            password_file: None,
            api_key_file: None,
        }
    }
}

impl StoreSettings {
    /// Reads `[elasticsearch]` (every key optional). `verification` is `full` (the default)
    /// or `certificate`, which is warned about.
    pub fn from_ini(ini: &IniFile) -> Result<StoreSettings> {
        let path = |key: &str| ini.optional(SECTION, key).map(PathBuf::from);
        let tls = TlsFiles::from_ini(ini, TLS_KEYS)?;
        let verification = match ini.string_or(SECTION, "verification", "full").as_str() {
            "full" => Verification::Full,
            "certificate" => {
                log::warn!(
                    "{}: [{SECTION}] verification = certificate: the store's certificates are checked against the CA but not against the host names of its URLs",
                    ini.name()
                );
                Verification::Certificate(certificate_only::client_config(&tls)?)
            }
            other => {
                return Err(ini.error(
                    SECTION,
                    "verification",
                    format!("{other:?}: expected full (certificate and host name) or certificate (certificate only)"),
                ))
            }
        };
        let settings = StoreSettings {
            tls,
            verification,
            password_file: path("password_file"),
            api_key_file: path("api_key_file"),
        };
        // Files that are wrong are said at start, not at the first request.
        for (key, file) in [
            ("password_file", &settings.password_file),
            ("api_key_file", &settings.api_key_file),
        ] {
            if let Some(file) = file {
                secret::read_line(file).map_err(|e| ini.error(SECTION, key, e.to_string()))?;
            }
        }
        Ok(settings)
    }

    /// The HTTP agent for the store: timeouts as given, answers of any status returned (not
    /// errors), TLS as set here.
    pub fn agent(&self, connect: Option<Duration>, global: Duration) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .timeout_connect(connect)
            .timeout_global(Some(global))
            .http_status_as_error(false)
            .tls_config(self.tls.config())
            .build();
        match &self.verification {
            Verification::Full => config.into(),
            Verification::Certificate(tls) => ureq::Agent::with_parts(
                config,
                TcpConnector::default().chain(CertificateOnly::new(tls.clone())),
                DefaultResolver::default(),
            ),
        }
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
        let read = |path: &Option<PathBuf>| path.as_deref().map(secret::read_line).transpose();
        Ok((read(&self.password_file)?, read(&self.api_key_file)?))
    }
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
            "transfer.ini: [elasticsearch] verification: \"none\": expected full (certificate and host name) or certificate (certificate only)"
        );
        // The TLS files' own rules are tested in tls.rs; here, that they name this section.
        let e = settings("[elasticsearch]\nclient_key = /x.key\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "transfer.ini: [elasticsearch] client_cert: client_key needs client_cert"
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
    fn secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("lc-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
