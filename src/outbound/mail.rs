//! E-mail through the operator's SMTP relay, always upgraded with STARTTLS (the relay's
//! certificate checked against the system's roots, or a CA the operator names). The relay is
//! set in the server's configuration, so it is trusted: the egress policy for user-set URLs
//! does not apply to it.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where and as whom golive sends mail.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// The sender every notification carries.
    pub from: Mailbox,
    /// User name and password for the relay, when it wants them (read from a file, never
    /// from the command line).
    pub credentials: Option<(String, String)>,
    /// A PEM bundle to trust for the relay's certificate instead of the system's roots.
    pub ca_pem: Option<String>,
    pub timeout_ms: u64,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from.to_string())
            .field("credentials", &self.credentials.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("the SMTP configuration is not usable: {0}")]
    Config(String),
    #[error("a recipient address is not valid: {0}")]
    Recipient(String),
    #[error("the SMTP relay did not take the message ({0})")]
    Send(&'static str),
}

impl SmtpSettings {
    /// Parses `smtp://HOST[:PORT]` (port 587 by default).
    pub fn parse(url: &str, from: &str) -> Result<SmtpSettings, MailError> {
        let parsed = url::Url::parse(url).map_err(|e| MailError::Config(format!("--smtp-url: {e}")))?;
        if parsed.scheme() != "smtp" {
            return Err(MailError::Config(format!(
                "--smtp-url must be smtp://HOST[:PORT] (STARTTLS is always used), not {}://",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(MailError::Config(
                "--smtp-url must not carry credentials: give --smtp-user and --smtp-password-file".into(),
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| MailError::Config("--smtp-url needs a host".into()))?;
        let from: Mailbox =
            from.parse().map_err(|_| MailError::Config(format!("--smtp-from {from:?} is not a mail address")))?;
        Ok(SmtpSettings {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: parsed.port().unwrap_or(587),
            from,
            credentials: None,
            ca_pem: None,
            timeout_ms: 15_000,
        })
    }
}

/// A connection-pooling client of the relay.
#[derive(Clone)]
pub struct SmtpRelay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for the log.
    relay: String,
}

impl std::fmt::Debug for SmtpRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRelay").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

impl SmtpRelay {
    pub fn new(settings: &SmtpSettings) -> Result<SmtpRelay, MailError> {
        let mut tls = TlsParameters::builder(settings.host.clone());
        if let Some(pem) = &settings.ca_pem {
            let certificate = Certificate::from_pem(pem.as_bytes())
                .map_err(|_| MailError::Config("the SMTP CA file holds no readable certificate".into()))?;
            tls = tls.add_root_certificate(certificate);
        }
        let tls = tls.build_rustls().map_err(|e| MailError::Config(format!("TLS for the SMTP relay: {e}")))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
            .port(settings.port)
            .tls(Tls::Required(tls))
            .timeout(Some(Duration::from_millis(settings.timeout_ms)));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let relay = format!("{}:{}", settings.host, settings.port);
        Ok(SmtpRelay { transport: builder.build(), from: settings.from.clone(), relay })
    }

    /// Sends one plain-text message to `to`.
    pub async fn send(&self, to: &[String], subject: &str, body: &str) -> Result<(), MailError> {
        let mut message = Message::builder().from(self.from.clone());
        for address in to {
            let mailbox: Mailbox = address.parse().map_err(|_| MailError::Recipient(address.clone()))?;
            message = message.to(mailbox);
        }
        // Customer names end up in the subject: line breaks there would be header injection,
        // so they become spaces (lettre encodes the rest).
        let subject: String = subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let message = message
            .message_id(None)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|_| MailError::Send("the message could not be built"))?;
        self.transport.send(message).await.map(|_| ()).map_err(|error| {
            // The relay is the operator's: its own words (a TLS or auth failure) help the
            // operator and go to the server's log; the journal keeps golive's.
            tracing::warn!(%error, relay = %self.relay, "the SMTP relay did not take a notification");
            if error.is_timeout() {
                MailError::Send("timed out")
            } else if error.is_permanent() {
                MailError::Send("permanent refusal")
            } else if error.is_transient() {
                MailError::Send("transient refusal")
            } else {
                MailError::Send("connection or TLS failure")
            }
        })
    }
}

/// A recipient list as an admin gives it: each a valid address.
pub fn parse_recipients(addresses: &[String]) -> Result<Vec<String>, MailError> {
    if addresses.is_empty() || addresses.len() > 20 {
        return Err(MailError::Recipient("give between 1 and 20 addresses".into()));
    }
    addresses
        .iter()
        .map(|a| {
            let a = a.trim();
            a.parse::<Mailbox>().map(|m| m.email.to_string()).map_err(|_| MailError::Recipient(a.to_owned()))
        })
        .collect()
}
