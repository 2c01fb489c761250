//! How this host reaches Kafka: section `[kafka]`'s brokers and security (TLS, SASL), the
//! librdkafka client settings made from them, and librdkafka's errors about them told in
//! words that name the setting to change.
//!
//! Every Kafka client of the project starts from [`KafkaSettings::client`], so a broker that
//! asks for TLS or SASL is reached the same way by the agent, the transfer and `logctl`.
//! SASL mechanisms are PLAIN and SCRAM (librdkafka built with OpenSSL); Kerberos (GSSAPI) and
//! OAUTHBEARER are not offered.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::producer::{BaseProducer, Partitioner, Producer, ProducerContext};

use crate::outage::{self, Ended, Outage};
use crate::settings::IniFile;
use crate::tls::{TlsFiles, TlsKeys};
use crate::{secret, Result};

const SECTION: &str = "kafka";

/// The names of `[kafka]`'s TLS settings.
pub const TLS_KEYS: TlsKeys = TlsKeys {
    section: SECTION,
    ca: "ca_file",
    cert: "client_cert",
    key: "client_key",
};

/// How often every client asks for the metadata of its topics, unasked (librdkafka's default
/// is 5 min). librdkafka can keep a stale leader after a broker dies and find the new one
/// only at that refresh (librdkafka issues 569 and 4976). The chaos suite once saw lines stop
/// for between 150 s and about 5 min after a partition leader's kill -9; the cause is not
/// proven, but the time fits this refresh. A metadata request every 10 s costs little.
const METADATA_REFRESH_MS: &str = "10000";

/// `security_protocol`: how a connection to a broker is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Neither TLS nor SASL.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl Protocol {
    /// The value, as in the ini and in librdkafka's `security.protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }

    fn parse(text: &str) -> Option<Protocol> {
        [
            Protocol::Plaintext,
            Protocol::Ssl,
            Protocol::SaslPlaintext,
            Protocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(text))
    }

    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// The SASL mechanisms offered, as Kafka names them.
pub const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// SASL credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// One of [`MECHANISMS`].
    pub mechanism: &'static str,
    /// `sasl_username`.
    pub username: String,
    /// `sasl_password_file`.
    pub password_file: PathBuf,
    password: String,
}

impl std::fmt::Debug for Sasl {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// Section `[kafka]`, the part every Kafka client shares: brokers and security.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// `host:port` list, as librdkafka's `bootstrap.servers`.
    pub brokers: String,
    /// `security_protocol`.
    pub protocol: Protocol,
    /// Credentials, with a `sasl_*` protocol.
    pub sasl: Option<Sasl>,
    /// `ca_file`, `client_cert` and `client_key`, with an `*ssl` protocol.
    pub tls: TlsFiles,
}

impl KafkaSettings {
    /// Brokers reached without TLS or SASL.
    pub fn plaintext(brokers: &str) -> KafkaSettings {
        KafkaSettings {
            brokers: brokers.to_string(),
            protocol: Protocol::Plaintext,
            sasl: None,
            tls: TlsFiles::none(TLS_KEYS),
        }
    }

    /// Reads `[kafka]`: `brokers`, `security_protocol` (default plaintext), `sasl_mechanism`
    /// (default PLAIN), `sasl_username`, `sasl_password_file`, `ca_file`, `client_cert`,
    /// `client_key`. Files are read now, so that a wrong one is said at start.
    pub fn from_ini(ini: &IniFile) -> Result<KafkaSettings> {
        let brokers = ini.list(SECTION, "brokers");
        if brokers.is_empty() {
            return Err(ini.error(SECTION, "brokers", "empty"));
        }
        for b in &brokers {
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(ini.error(SECTION, "brokers", format!("{b:?} is not host:port")));
            }
        }
        let raw = ini.string_or(SECTION, "security_protocol", "plaintext");
        let protocol = Protocol::parse(&raw).ok_or_else(|| {
            ini.error(
                SECTION,
                "security_protocol",
                format!("{raw:?} is not one of plaintext, ssl, sasl_plaintext, sasl_ssl"),
            )
        })?;
        let tls = TlsFiles::from_ini(ini, TLS_KEYS)?;
        if !protocol.tls() && (tls.ca_file.is_some() || tls.client_cert.is_some()) {
            let key = if tls.ca_file.is_some() {
                "ca_file"
            } else {
                "client_cert"
            };
            return Err(ini.error(
                SECTION,
                key,
                format!(
                    "security_protocol is {}, without TLS: set ssl or sasl_ssl",
                    protocol.name()
                ),
            ));
        }
        Ok(KafkaSettings {
            brokers: brokers.join(","),
            protocol,
            sasl: sasl(ini, protocol)?,
            tls,
        })
    }

    /// A librdkafka configuration that reaches these brokers as set here; each client adds
    /// its own settings.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("security.protocol", self.protocol.name())
            .set("topic.metadata.refresh.interval.ms", METADATA_REFRESH_MS);
        // Without a CA file, a statically linked OpenSSL makes librdkafka probe the usual
        // system paths for the public CAs; the host name is checked either way.
        if let Some(ca) = &self.tls.ca_file {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some((cert, key)) = &self.tls.client_cert {
            config
                .set("ssl.certificate.location", cert.display().to_string())
                .set("ssl.key.location", key.display().to_string());
        }
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanisms", sasl.mechanism)
                .set("sasl.username", &sasl.username)
                .set("sasl.password", &sasl.password);
        }
        config
    }
}

/// The `sasl_*` settings: required with a SASL protocol, refused without one.
fn sasl(ini: &IniFile, protocol: Protocol) -> Result<Option<Sasl>> {
    let given = ["sasl_mechanism", "sasl_username", "sasl_password_file"]
        .into_iter()
        .find(|key| ini.optional(SECTION, key).is_some());
    if !protocol.sasl() {
        return match given {
            Some(key) => Err(ini.error(
                SECTION,
                key,
                format!(
                    "security_protocol is {}, without SASL: set sasl_ssl or sasl_plaintext",
                    protocol.name()
                ),
            )),
            None => Ok(None),
        };
    }
    let raw = ini.string_or(SECTION, "sasl_mechanism", "PLAIN");
    let mechanism = MECHANISMS
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(&raw))
        .ok_or_else(|| {
            let why = if raw.eq_ignore_ascii_case("GSSAPI") {
                "Kerberos (GSSAPI) is not supported"
            } else {
                "not supported"
            };
            ini.error(
                SECTION,
                "sasl_mechanism",
                format!("{raw:?}: {why}; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
            )
        })?;
    let needed = |key: &str| {
        ini.optional(SECTION, key).ok_or_else(|| {
            ini.error(
                SECTION,
                key,
                format!("missing: security_protocol {} needs it", protocol.name()),
            )
        })
    };
    let username = needed("sasl_username")?;
    let password_file = PathBuf::from(needed("sasl_password_file")?);
    let password = secret::read_line(&password_file)
        .map_err(|e| ini.error(SECTION, "sasl_password_file", e.to_string()))?;
    Ok(Some(Sasl {
        mechanism,
        username,
        password_file,
        password,
    }))
}

/// librdkafka's errors, said once per outage and then again at a growing interval
/// ([`Outage`]): while a broker is away, librdkafka reports every reconnection attempt.
#[derive(Default)]
pub struct ErrorLog(Outage);

impl ErrorLog {
    /// Whether an error of this `kind` (its code) should be said now, and if so how many like
    /// it were held back since it was last said. "0/N brokers are down" (all back: it
    /// contradicted the line before it) never is.
    pub fn admit(&self, kind: &str, reason: &str) -> Option<u64> {
        if reason.starts_with("0/") && reason.contains("brokers are down") {
            return None;
        }
        self.0.admit(kind)
    }

    /// The connection works (a record was acknowledged, or read): the outage that ended, if
    /// one was on, to be said.
    pub fn recovered(&self) -> Option<Ended> {
        self.0.recovered()
    }
}

/// An error as [`ErrorLog`] admits it: in our words, then how many like it were held back.
pub fn said(error: &rdkafka::error::KafkaError, reason: &str, held_back: u64) -> String {
    format!(
        "{} ({error}){}",
        describe(reason),
        outage::held_back(held_back)
    )
}

/// The kind of a librdkafka error, for [`ErrorLog::admit`]: its code.
pub fn kind(error: &rdkafka::error::KafkaError) -> String {
    error
        .rdkafka_error_code()
        .map_or_else(|| "other".to_string(), |c| format!("{c:?}"))
}

/// Serves `producer`'s delivery reports until one came (a record left its queue) or up to
/// `timeout`, for a sender whose queue was full.
///
/// rdkafka's `poll` always waits out its whole timeout, so a sender calling it with 100 ms
/// sat idle with room already free: the agent took 1.95 to 2.5 s per million lines instead of
/// 1.8. Polling in slices that double from 1 ms ends within about a round trip of the broker,
/// and a long wait (a broker away) still wakes only a few times.
pub fn wait_for_room<C, P>(producer: &BaseProducer<C, P>, timeout: Duration)
where
    C: ProducerContext<P>,
    P: Partitioner,
{
    let deadline = Instant::now() + timeout;
    let queued = producer.in_flight_count();
    let mut slice = Duration::from_millis(1);
    loop {
        producer.poll(slice.min(deadline.saturating_duration_since(Instant::now())));
        if producer.in_flight_count() < queued || Instant::now() >= deadline {
            return;
        }
        slice *= 2;
    }
}

/// librdkafka's own log lines, to the `log` crate as rdkafka routes them, except the `FAIL`
/// ones: each is also reported as an error, which [`ErrorLog`] says (once, not twice).
pub fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let level = match level {
        _ if facility == "FAIL" => log::Level::Debug,
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => log::Level::Error,
        RDKafkaLogLevel::Warning => log::Level::Warn,
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => log::Level::Info,
        RDKafkaLogLevel::Debug => log::Level::Debug,
    };
    log::log!(target: "librdkafka", level, "librdkafka: {facility} {message}");
}

/// librdkafka's `reason` for a failed connection, followed by what to change when it is about
/// TLS or SASL: its own words name its settings, not ours.
pub fn describe(reason: &str) -> String {
    let hint = match () {
        _ if reason.contains("certificate verify failed")
            && reason.contains("self-signed certificate") =>
        {
            "the broker's certificate is self-signed: set [kafka] ca_file to it"
        }
        _ if reason.contains("certificate has expired") => {
            "the broker's certificate has expired, or the clocks differ"
        }
        _ if reason.contains("certificate verify failed") => {
            "the broker's certificate is not signed by a CA this host trusts, or not for the host name in [kafka] brokers: set [kafka] ca_file to the CA that signed it"
        }
        _ if reason.contains("certificate required")
            || reason.contains("alert bad certificate")
            || reason.contains("alert unknown ca") =>
        {
            "the broker refuses the client certificate: set [kafka] client_cert and client_key to one its CA signed"
        }
        _ if reason.contains("SASL authentication error")
            || reason.contains("Authentication failed") =>
        {
            "the broker refuses the credentials: check [kafka] sasl_username, sasl_password_file and sasl_mechanism"
        }
        _ if reason.contains("security.protocol") || reason.contains("SSL handshake failed") => {
            "check that [kafka] security_protocol is what this listener expects"
        }
        _ => return reason.to_string(),
    };
    format!("{reason}; {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<KafkaSettings> {
        KafkaSettings::from_ini(&IniFile::parse("agent.ini", text)?)
    }

    fn error(text: &str) -> String {
        settings(&format!("[kafka]\nbrokers = a:9092\n{text}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn brokers() {
        let k = settings("[kafka]\nbrokers = a:9092, b:9093\n").unwrap();
        assert_eq!(k, KafkaSettings::plaintext("a:9092,b:9093"));
        let e = settings("[kafka]\nbrokers =\n").unwrap_err();
        assert_eq!(e.to_string(), "agent.ini: [kafka] brokers: empty");
        let e = settings("[kafka]\nbrokers = a\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "agent.ini: [kafka] brokers: \"a\" is not host:port"
        );
    }

    #[test]
    fn security_errors_name_the_setting() {
        assert_eq!(
            error("security_protocol = tls\n"),
            "agent.ini: [kafka] security_protocol: \"tls\" is not one of plaintext, ssl, sasl_plaintext, sasl_ssl"
        );
        assert_eq!(
            error("sasl_username = u\n"),
            "agent.ini: [kafka] sasl_username: security_protocol is plaintext, without SASL: set sasl_ssl or sasl_plaintext"
        );
        assert_eq!(
            error("security_protocol = SASL_SSL\nsasl_mechanism = GSSAPI\n"),
            "agent.ini: [kafka] sasl_mechanism: \"GSSAPI\": Kerberos (GSSAPI) is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
        );
        assert_eq!(
            error("security_protocol = sasl_ssl\nsasl_mechanism = scram-sha-512\n"),
            "agent.ini: [kafka] sasl_username: missing: security_protocol sasl_ssl needs it"
        );
        assert_eq!(
            error("security_protocol = sasl_plaintext\nsasl_username = u\n"),
            "agent.ini: [kafka] sasl_password_file: missing: security_protocol sasl_plaintext needs it"
        );
        assert_eq!(
            error("security_protocol = sasl_plaintext\nsasl_username = u\nsasl_password_file = /nonexistent/pw\n"),
            "agent.ini: [kafka] sasl_password_file: /nonexistent/pw: cannot read the secret: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn client_settings() {
        let dir = std::env::temp_dir().join(format!("lc-kafka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let password = dir.join("password");
        std::fs::write(&password, "s3cret\n").unwrap();
        let k = settings(&format!(
            "[kafka]\nbrokers = a:9094\nsecurity_protocol = sasl_plaintext\nsasl_mechanism = scram-sha-512\nsasl_username = lc\nsasl_password_file = {}\n",
            password.display()
        ))
        .unwrap();
        let c = k.client();
        assert_eq!(c.get("bootstrap.servers"), Some("a:9094"));
        assert_eq!(c.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("lc"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        assert_eq!(c.get("topic.metadata.refresh.interval.ms"), Some("10000"));
        assert_eq!(c.get("ssl.ca.location"), None);
        assert!(!format!("{k:?}").contains("s3cret"));
        std::fs::remove_dir_all(&dir).unwrap();
        // TLS files need a TLS protocol.
        assert_eq!(
            error("ca_file = /etc/ssl/certs/ca-certificates.crt\n"),
            "agent.ini: [kafka] ca_file: security_protocol is plaintext, without TLS: set ssl or sasl_ssl"
        );
    }

    #[test]
    fn all_brokers_back_is_not_an_error() {
        let log = ErrorLog::default();
        assert_eq!(log.admit("AllBrokersDown", "1/1 brokers are down"), Some(0));
        assert_eq!(log.admit("AllBrokersDown", "0/1 brokers are down"), None);
    }

    #[test]
    fn descriptions_name_our_settings() {
        // librdkafka 2.12's words, recorded against Apache Kafka 4.1 (tests/kafka_security.sh).
        let verify = "ssl://127.0.0.1:24535/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 81ms in state SSL_HANDSHAKE)";
        assert_eq!(
            describe(verify),
            format!("{verify}; the broker's certificate is not signed by a CA this host trusts, or not for the host name in [kafka] brokers: set [kafka] ca_file to the CA that signed it")
        );
        let no_cert = "ssl://127.0.0.1:24535/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert bad certificate: SSL alert number 42 (after 7ms in state APIVERSION_QUERY)";
        assert_eq!(
            describe(no_cert),
            format!("{no_cert}; the broker refuses the client certificate: set [kafka] client_cert and client_key to one its CA signed")
        );
        let sasl = "sasl_ssl://127.0.0.1:24536/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 332ms in state AUTH_REQ)";
        assert_eq!(
            describe(sasl),
            format!("{sasl}; the broker refuses the credentials: check [kafka] sasl_username, sasl_password_file and sasl_mechanism")
        );
        let refused = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)";
        assert_eq!(describe(refused), refused);
    }
}
