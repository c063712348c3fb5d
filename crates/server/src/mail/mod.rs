//! Outgoing mail: SMTP through lettre (tokio, rustls), off the request path. A request queues
//! its message and goes on; a worker sends it, retrying what may succeed later, and a message
//! that cannot be sent is logged and audited, never dropped in silence.

mod templates;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use secrecy::{ExposeSecret, SecretString};
use std::num::NonZeroU32;
use tokio::sync::{Notify, Semaphore, mpsc};

pub use templates::{Rendered, Template, render};

use crate::{
    audit::{AuditEvent, AuditKind},
    storage::Storage,
};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    /// Plain text: only to a server on this machine (loopback).
    None,
    /// STARTTLS, required: the connection is upgraded before anything is sent.
    Starttls,
    /// Implicit TLS from the first byte (`smtps://`, usually port 465).
    Tls,
}

/// The SMTP server and sender, checked at start.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, SecretString)>,
    pub from: Mailbox,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl SmtpSettings {
    /// Reads `smtp://user:pass@host:port` or `smtps://…`. Without `tls`, `smtps` is implicit
    /// TLS, and `smtp` is STARTTLS, or plain text to a loopback host. Plain text to any other
    /// host is refused: it would carry the password and every reset code in the clear.
    pub fn parse(url: &str, tls: Option<SmtpTls>, from: &str) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            anyhow::anyhow!(
                "--smtp-url is not a URL ({e}); e.g. smtp://user:pass@mail.example.com:587"
            )
        })?;
        let implicit = match parsed.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                anyhow::bail!("--smtp-url must start with smtp:// or smtps://, not {other}://")
            }
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(domain)) => domain.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => anyhow::bail!("--smtp-url has no host"),
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let tls = match (tls, implicit) {
            (Some(SmtpTls::None | SmtpTls::Starttls), true) => {
                anyhow::bail!("an smtps:// URL means implicit TLS; use smtp:// with --smtp-tls")
            }
            (Some(tls), false) => tls,
            (None | Some(SmtpTls::Tls), true) => SmtpTls::Tls,
            (None, false) if loopback => SmtpTls::None,
            (None, false) => SmtpTls::Starttls,
        };
        if tls == SmtpTls::None && !loopback {
            anyhow::bail!(
                "refusing to send mail unencrypted to {host}: use --smtp-tls starttls or tls \
                 (plain text is for a mail server on this machine only)"
            );
        }
        let port = parsed.port().unwrap_or(match tls {
            SmtpTls::Tls => 465,
            SmtpTls::Starttls => 587,
            SmtpTls::None => 25,
        });
        let decode = |raw: &str| {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| anyhow::anyhow!("--smtp-url: the user and password must be UTF-8"))
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, password) => Some((
                decode(user)?,
                SecretString::from(decode(password.unwrap_or(""))?),
            )),
        };
        let from = from.parse::<Mailbox>().map_err(|e| {
            anyhow::anyhow!(
                "--mail-from is not a mail address ({e}); e.g. 'Acme <auth@acme.example>'"
            )
        })?;
        Ok(Self {
            host,
            port,
            tls,
            credentials,
            from,
        })
    }
}

/// Mail settings: the server, if any, and how hard to try.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp: Option<SmtpSettings>,
    /// Tries per message, the first included.
    pub max_attempts: u32,
    /// The wait before the second try; it doubles for each further one (at most 5 minutes).
    pub retry_base: Duration,
    /// Messages waiting to be sent at most; beyond, a message is refused (logged and audited).
    pub queue_capacity: usize,
    /// The least time between two mails of one purpose (a reset, a verification) to one user.
    pub send_cooldown: Duration,
    /// Messages to one address per hour at most, whatever asks for them; beyond, a message
    /// is refused (logged and audited).
    pub per_recipient_per_hour: u32,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp: None,
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            queue_capacity: 1000,
            send_cooldown: Duration::from_secs(60),
            per_recipient_per_hour: 10,
        }
    }
}

/// One message to one user.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub to: String,
    /// The user it is about, for the audit log.
    pub user_id: Option<i64>,
    pub template: Template,
    pub message: Rendered,
}

/// Sends mail, when a server is configured. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Option<(Arc<Delivery>, mpsc::Sender<Outgoing>)>,
    /// Messages per destination address (lower-cased).
    per_recipient: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

/// Messages being sent at once.
const CONCURRENT_SENDS: usize = 4;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(300);

impl Mailer {
    /// A mailer that sends nothing: the features that need mail say so.
    pub fn disabled() -> Self {
        Self {
            inner: None,
            per_recipient: None,
        }
    }

    /// Starts the sending worker (on the current tokio runtime) if SMTP is configured.
    pub fn start(settings: &MailSettings, storage: Storage) -> anyhow::Result<Self> {
        let Some(smtp) = &settings.smtp else {
            return Ok(Self::disabled());
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(15)));
        let builder = match smtp.tls {
            SmtpTls::None => builder.tls(Tls::None),
            SmtpTls::Starttls => builder.tls(Tls::Required(TlsParameters::new(smtp.host.clone())?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(TlsParameters::new(smtp.host.clone())?)),
        };
        let builder = match &smtp.credentials {
            Some((user, password)) => builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            )),
            None => builder,
        };
        let delivery = Arc::new(Delivery {
            transport: builder.build(),
            from: smtp.from.clone(),
            max_attempts: settings.max_attempts.max(1),
            retry_base: settings.retry_base,
            storage,
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let (queue, receiver) = mpsc::channel(settings.queue_capacity.max(1));
        tokio::spawn(Arc::clone(&delivery).work(receiver));
        let per_recipient = NonZeroU32::new(settings.per_recipient_per_hour)
            .map(|n| Arc::new(RateLimiter::keyed(Quota::per_hour(n))));
        Ok(Self {
            inner: Some((delivery, queue)),
            per_recipient,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues a message and returns at once. With no mail server configured, returns `false`
    /// (the caller decides what to tell). A full queue refuses the message: it is logged and
    /// audited as not sent.
    pub async fn queue(&self, mail: Outgoing) -> bool {
        let Some((delivery, queue)) = &self.inner else {
            return false;
        };
        if let Some(limiter) = &self.per_recipient
            && limiter.check_key(&mail.to.to_ascii_lowercase()).is_err()
        {
            delivery
                .report_failure(&mail, "too many messages to this address this hour", 0)
                .await;
            return true;
        }
        delivery.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(error) = queue.try_send(mail) {
            let mail = match error {
                mpsc::error::TrySendError::Full(mail) | mpsc::error::TrySendError::Closed(mail) => {
                    mail
                }
            };
            delivery
                .report_failure(&mail, "the mail queue is full", 0)
                .await;
            delivery.done();
        }
        true
    }

    /// Messages queued and not yet sent or given up.
    pub fn pending(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |(delivery, _)| delivery.pending.load(Ordering::SeqCst))
    }

    /// Waits until every message queued so far is sent or given up: for the CLI, which exits
    /// right after.
    pub async fn flush(&self) {
        let Some((delivery, _)) = &self.inner else {
            return;
        };
        loop {
            let idle = delivery.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if delivery.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// What sends: the transport, and where failures are recorded.
struct Delivery {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    max_attempts: u32,
    retry_base: Duration,
    storage: Storage,
    /// Messages queued and not yet sent or given up.
    pending: AtomicUsize,
    /// Told when `pending` reaches zero.
    idle: Notify,
}

impl Delivery {
    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Sends what is queued, a few at once, until every [`Mailer`] is gone.
    async fn work(self: Arc<Self>, mut receiver: mpsc::Receiver<Outgoing>) {
        let permits = Arc::new(Semaphore::new(CONCURRENT_SENDS));
        while let Some(mail) = receiver.recv().await {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let delivery = Arc::clone(&self);
            tokio::spawn(async move {
                let _permit = permit;
                // Failures were reported by `deliver`.
                let _ = delivery.deliver(&mail).await;
                delivery.done();
            });
        }
    }

    /// Sends `mail`, trying again after a transient failure (a connection refused, a 4xx
    /// answer) up to the attempt limit; a permanent one (5xx) ends it at once. A failure is
    /// logged and audited before it is returned.
    async fn deliver(&self, mail: &Outgoing) -> anyhow::Result<()> {
        let message = match self.message(mail) {
            Ok(message) => message,
            Err(e) => {
                let reason = format!("the message could not be built: {e}");
                self.report_failure(mail, &reason, 0).await;
                anyhow::bail!(reason);
            }
        };
        let mut wait = self.retry_base;
        let mut attempt = 1;
        loop {
            match self.transport.send(message.clone()).await {
                Ok(_) => {
                    tracing::info!(
                        template = mail.template.name(),
                        user_id = mail.user_id,
                        attempt,
                        "mail sent"
                    );
                    return Ok(());
                }
                Err(e) if e.is_permanent() || attempt >= self.max_attempts => {
                    let reason = e.to_string();
                    self.report_failure(mail, &reason, attempt).await;
                    anyhow::bail!("mail not sent after {attempt} attempts: {reason}");
                }
                Err(e) => {
                    tracing::warn!(
                        template = mail.template.name(),
                        user_id = mail.user_id,
                        attempt,
                        error = %e,
                        retry_in = ?wait,
                        "mail not sent yet; will retry"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY_WAIT);
                    attempt += 1;
                }
            }
        }
    }

    fn message(&self, mail: &Outgoing) -> anyhow::Result<Message> {
        let to: Mailbox = mail.to.parse()?;
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.message.subject)
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(
                mail.message.text.clone(),
                mail.message.html.clone(),
            ))?)
    }

    async fn report_failure(&self, mail: &Outgoing, reason: &str, attempts: u32) {
        tracing::error!(
            template = mail.template.name(),
            user_id = mail.user_id,
            attempts,
            reason,
            "mail could not be sent"
        );
        self.storage
            .audit(AuditEvent {
                detail: Some(format!(
                    "{} to {}: {reason} ({attempts} attempts)",
                    mail.template.name(),
                    mail.to
                )),
                ..AuditEvent::new(AuditKind::MailFailed, mail.user_id)
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, tls: Option<SmtpTls>) -> anyhow::Result<SmtpSettings> {
        SmtpSettings::parse(url, tls, "Tollgate <auth@example.com>")
    }

    #[test]
    fn tls_follows_the_url_and_plain_text_stays_on_loopback() {
        let local = parse("smtp://127.0.0.1:2525", None).unwrap();
        assert_eq!((local.tls, local.port), (SmtpTls::None, 2525));
        assert!(local.credentials.is_none());
        let remote = parse("smtp://me%40x:p%3Ass@mail.example.com", None).unwrap();
        assert_eq!((remote.tls, remote.port), (SmtpTls::Starttls, 587));
        let (user, password) = remote.credentials.unwrap();
        assert_eq!((user.as_str(), password.expose_secret()), ("me@x", "p:ss"));
        let implicit = parse("smtps://mail.example.com", None).unwrap();
        assert_eq!((implicit.tls, implicit.port), (SmtpTls::Tls, 465));
        let starttls_local = parse("smtp://localhost", Some(SmtpTls::Starttls)).unwrap();
        assert_eq!(starttls_local.tls, SmtpTls::Starttls);
        assert!(parse("smtp://mail.example.com", Some(SmtpTls::None)).is_err());
        assert!(parse("smtps://mail.example.com", Some(SmtpTls::Starttls)).is_err());
        assert!(parse("http://mail.example.com", None).is_err());
        assert!(parse("not a url", None).is_err());
        assert!(SmtpSettings::parse("smtp://127.0.0.1", None, "nobody").is_err());
    }

    #[test]
    fn the_password_never_prints() {
        let settings = parse("smtp://me:hunter22@127.0.0.1", None).unwrap();
        assert!(!format!("{settings:?}").contains("hunter22"));
    }
}
