//! Talking to the `[smtp]` server: building the lettre transport, sending
//! one message, and testing the connection for `check`.
//!
//! Security rules, enforced here whatever the caller does:
//! - `smtp://` uses STARTTLS and requires it: a server that does not offer
//!   STARTTLS is refused, never used in plain text.
//! - `smtps://` is TLS from the first byte.
//! - Certificates are verified against the webpki roots plus the `ca_file`
//!   PEM when one is set; the host name must match.
//! - Credentials travel only over TLS, or in plain text to a loopback relay
//!   that the configuration marks `tls = "none"`.
//!
//! lettre's rustls configuration uses the process-wide rustls provider if
//! one is installed and ring otherwise; lettre is built with its `ring`
//! feature only, so ring is what runs. lettre writes protocol traces only
//! with its `tracing` feature, which is off; rustls logs through `log`,
//! which our `tracing` subscriber does not collect. The `lettre` and
//! `rustls` targets are capped at `info` anyway (see `logging`).

use crate::config::{Smtp, SmtpSecurity};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::time::Duration;

/// Connect, read and write timeout for every SMTP exchange.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One plain-text message to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// `smtp://host:port (STARTTLS)` and the like, for messages.
pub fn describe(smtp: &Smtp) -> String {
    let (scheme, how) = match smtp.security {
        SmtpSecurity::StartTls => ("smtp", "STARTTLS required"),
        SmtpSecurity::Implicit => ("smtps", "implicit TLS"),
        SmtpSecurity::None => ("smtp", "plain text to a loopback relay"),
    };
    format!("{scheme}://{}:{} ({how})", smtp.host, smtp.port)
}

/// Builds the transport: TLS mode, trusted roots, credentials, timeouts.
pub fn transport(smtp: &Smtp) -> Result<SmtpTransport> {
    let credentials = match (&smtp.user, &smtp.password_env) {
        (Some(user), Some(_)) => {
            let password = smtp.password()?.unwrap_or_default();
            Some(Credentials::new(user.clone(), password))
        }
        (None, None) => None,
        (Some(_), None) => bail!(
            "smtp: `user` is set but `password_env` is not; name the environment variable \
             that holds the password, or remove `user`"
        ),
        (None, Some(_)) => {
            bail!("smtp: `password_env` is set but `user` is not; add the user name to log in as")
        }
    };

    let tls = match smtp.security {
        SmtpSecurity::StartTls => Tls::Required(tls_parameters(smtp)?),
        SmtpSecurity::Implicit => Tls::Wrapper(tls_parameters(smtp)?),
        SmtpSecurity::None => {
            // The configuration already refuses this for other hosts; this
            // guard keeps credentials off the network whatever built it.
            if credentials.is_some() && !is_loopback(&smtp.host) {
                bail!(
                    "smtp: refusing to send credentials in plain text to `{}`; use smtp:// \
                     (STARTTLS) or smtps://",
                    smtp.host
                );
            }
            Tls::None
        }
    };

    let mut builder = SmtpTransport::builder_dangerous(bare_host(&smtp.host))
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(TIMEOUT));
    if let Some(c) = credentials {
        builder = builder.credentials(c);
    }
    Ok(builder.build())
}

fn tls_parameters(smtp: &Smtp) -> Result<TlsParameters> {
    let mut b = TlsParameters::builder(bare_host(&smtp.host).to_string());
    if let Some(path) = &smtp.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("smtp: failed to read ca_file `{}`", path.display()))?;
        let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .ok()
            .filter(|c: &Vec<CertificateDer>| !c.is_empty())
            .with_context(|| {
                format!(
                    "smtp: ca_file `{}` holds no valid PEM certificate; give the CA \
                     certificate (-----BEGIN CERTIFICATE-----) that signed the server's",
                    path.display()
                )
            })?;
        for der in certs {
            let cert = Certificate::from_der(der.to_vec())
                .map_err(|e| anyhow!("smtp: ca_file `{}`: {e}", path.display()))?;
            b = b.add_root_certificate(cert);
        }
    }
    b.build_rustls()
        .map_err(|e| anyhow!("smtp: failed to set up TLS for `{}`: {e}", smtp.host))
}

/// The host without the brackets a URL puts around an IPv6 address, as
/// the socket address and the certificate check want it.
fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

fn is_loopback(host: &str) -> bool {
    let h = bare_host(host);
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Builds the message: from `[smtp] from`, to every recipient, dated `date`.
pub fn message(smtp: &Smtp, mail: &Mail, date: DateTime<Utc>) -> Result<Message> {
    let from: Mailbox = format!("segsync <{}>", smtp.from)
        .parse()
        .with_context(|| format!("smtp: `from` address `{}` is not usable", smtp.from))?;
    let mut b = Message::builder()
        .from(from)
        .subject(mail.subject.as_str())
        .date(date.into())
        // Some spam filters penalise mail without one; relays do not all add it.
        .message_id(None)
        .header(ContentType::TEXT_PLAIN);
    for to in &mail.to {
        let mb: Mailbox = to
            .parse()
            .with_context(|| format!("recipient `{to}` is not an email address"))?;
        b = b.to(mb);
    }
    b.body(mail.body.clone())
        .context("failed to build the email")
}

/// Sends `mail` through the configured server.
pub fn send(smtp: &Smtp, mail: &Mail, date: DateTime<Utc>) -> Result<()> {
    let msg = message(smtp, mail, date)?;
    let transport = transport(smtp)?;
    transport
        .send(&msg)
        .map_err(|e| anyhow!("failed to send through {}: {e}", describe(smtp)))?;
    Ok(())
}

/// Connects, greets, secures and authenticates, then quits without
/// sending anything.
pub fn test_connection(smtp: &Smtp) -> Result<()> {
    let transport = transport(smtp)?;
    match transport.test_connection() {
        Ok(true) => Ok(()),
        Ok(false) => bail!("{}: the server did not answer NOOP", describe(smtp)),
        Err(e) => Err(anyhow!("failed to connect to {}: {e}", describe(smtp))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(security: SmtpSecurity, host: &str) -> Smtp {
        Smtp {
            security,
            host: host.into(),
            port: 2525,
            from: "segsync@example.com".into(),
            user: Some("robot".into()),
            password_env: Some("SEGSYNC_TEST_NOTIFY_UNIT_PW".into()),
            ca_file: None,
        }
    }

    #[test]
    fn never_plain_credentials_to_a_remote_host() {
        std::env::set_var("SEGSYNC_TEST_NOTIFY_UNIT_PW", "pw");
        let e = transport(&smtp(SmtpSecurity::None, "mail.example.com")).unwrap_err();
        assert!(format!("{e}").contains("plain text"), "{e}");
        assert!(transport(&smtp(SmtpSecurity::None, "127.0.0.1")).is_ok());
        assert!(transport(&smtp(SmtpSecurity::None, "[::1]")).is_ok());
    }

    #[test]
    fn half_credentials_are_refused() {
        let mut s = smtp(SmtpSecurity::StartTls, "mail.example.com");
        s.password_env = None;
        assert!(format!("{}", transport(&s).unwrap_err()).contains("password_env"));
        s.user = None;
        s.password_env = Some("X".into());
        assert!(format!("{}", transport(&s).unwrap_err()).contains("`user`"));
    }

    #[test]
    fn unset_password_variable_is_named() {
        let mut s = smtp(SmtpSecurity::StartTls, "mail.example.com");
        s.password_env = Some("SEGSYNC_TEST_NOTIFY_SURELY_UNSET".into());
        let e = format!("{:#}", transport(&s).unwrap_err());
        assert!(e.contains("SEGSYNC_TEST_NOTIFY_SURELY_UNSET"), "{e}");
    }

    #[test]
    fn bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        let mut s = smtp(SmtpSecurity::StartTls, "mail.example.com");
        s.user = None;
        s.password_env = None;
        s.ca_file = Some(p);
        let e = format!("{:#}", transport(&s).unwrap_err());
        assert!(e.contains("ca.pem"), "{e}");
    }

    #[test]
    fn message_has_plain_text_and_all_recipients() {
        let s = smtp(SmtpSecurity::StartTls, "mail.example.com");
        let m = Mail {
            to: vec!["a@example.com".into(), "b@example.com".into()],
            subject: "[segsync] x: refresh failed".into(),
            body: "hello\n".into(),
        };
        let date = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z")
            .unwrap()
            .to_utc();
        let raw = String::from_utf8(message(&s, &m, date).unwrap().formatted()).unwrap();
        assert!(raw.contains("To: a@example.com, b@example.com"), "{raw}");
        assert!(
            raw.contains("Subject: [segsync] x: refresh failed"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(
            raw.contains("Date: Tue, 01 Dec 2026 02:00:00 +0000"),
            "{raw}"
        );
    }
}
