//! E-mail: messages rendered from the templates in `templates/mail/` (plain text and HTML
//! parts), sent over SMTP with lettre (`SMTP_URL`), or, without it, written as `.eml` files
//! under `DATA_DIR/mail/` for a developer to read.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::DeliveryOutcome;

/// How long one SMTP exchange may take (connect, greet, send); the delivery lease is
/// longer, so a stuck server cannot get a message sent twice.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A message ready to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Where mail goes.
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in this folder.
    Files(PathBuf),
}

impl Mailer {
    /// SMTP when `smtp_url` is given, else files under `mail_dir`.
    pub fn new(smtp_url: Option<&str>, mail_dir: PathBuf) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => Ok(Self::Smtp(smtp_transport(url)?)),
            None => Ok(Self::Files(mail_dir)),
        }
    }

    /// For the start-up log: where mail goes (never the credentials).
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp(_) => "SMTP".to_string(),
            Self::Files(dir) => format!("files in {}", dir.display()),
        }
    }

    /// Sends `mail` from `from`; `name` names the file of a written message.
    pub async fn send(&self, from: &Mailbox, mail: Mail, name: &str) -> DeliveryOutcome {
        let mut builder = Message::builder()
            .from(from.clone())
            .to(mail.to)
            .subject(mail.subject);
        if let Some(reply_to) = mail.reply_to {
            builder = builder.reply_to(reply_to);
        }
        let message = match builder
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
        {
            Ok(message) => message,
            Err(err) => return DeliveryOutcome::Failed(format!("cannot build the message: {err}")),
        };
        match self {
            Self::Smtp(transport) => match transport.send(message).await {
                Ok(_) => DeliveryOutcome::Sent,
                // 5xx: the server will never take it (unknown mailbox, refused sender).
                Err(err) if err.is_permanent() => DeliveryOutcome::Failed(err.to_string()),
                Err(err) => DeliveryOutcome::Retry(err.to_string()),
            },
            Self::Files(dir) => match write_eml(dir, name, &message.formatted()).await {
                Ok(path) => {
                    tracing::info!(path = %path.display(), "mail written (no SMTP_URL)");
                    DeliveryOutcome::Sent
                }
                Err(err) => DeliveryOutcome::Retry(format!("cannot write the message: {err}")),
            },
        }
    }
}

/// Writes the message whole or not at all (a temporary file renamed into place).
async fn write_eml(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!("{name}.eml"));
    let partial = dir.join(format!(".{name}.eml.partial"));
    tokio::fs::write(&partial, bytes).await?;
    tokio::fs::rename(&partial, &path).await?;
    Ok(path)
}

/// How `SMTP_URL` asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://` (default): STARTTLS, refused if the server does not offer it.
    Required,
    /// `?tls=opportunistic`: STARTTLS when offered.
    Opportunistic,
    /// `?tls=none`: plain text (a local relay, tests).
    None,
}

/// The SMTP transport `url` names: `smtp://user:pass@host:587` (STARTTLS required unless
/// `?tls=opportunistic` or `?tls=none`) or `smtps://user:pass@host:465`.
fn smtp_transport(url: &str) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let parsed = url::Url::parse(url).context("SMTP_URL is not a URL")?;
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .context("SMTP_URL has no host")?
        .to_string();
    let mut mode = match parsed.scheme() {
        "smtps" => TlsMode::Implicit,
        "smtp" => TlsMode::Required,
        other => anyhow::bail!("SMTP_URL must start with smtp:// or smtps://, not {other}://"),
    };
    for (key, value) in parsed.query_pairs() {
        match (key.as_ref(), value.as_ref(), mode) {
            ("tls", "required", TlsMode::Required) => {}
            ("tls", "opportunistic", TlsMode::Required) => mode = TlsMode::Opportunistic,
            ("tls", "none", TlsMode::Required) => mode = TlsMode::None,
            _ => anyhow::bail!(
                "SMTP_URL: unknown option {key}={value} (smtp:// takes tls=required, \
                 opportunistic or none)"
            ),
        }
    }
    let port = parsed.port().unwrap_or(match mode {
        TlsMode::Implicit => 465,
        _ => 587,
    });
    let tls_parameters =
        || TlsParameters::new(host.clone()).context("SMTP_URL: cannot set up TLS for its host");
    let tls = match mode {
        TlsMode::Implicit => Tls::Wrapper(tls_parameters()?),
        TlsMode::Required => Tls::Required(tls_parameters()?),
        TlsMode::Opportunistic => Tls::Opportunistic(tls_parameters()?),
        TlsMode::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if !parsed.username().is_empty() {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .context("SMTP_URL: the user name or password is not UTF-8")
        };
        builder = builder.credentials(Credentials::new(
            decode(parsed.username())?,
            decode(parsed.password().unwrap_or_default())?,
        ));
    }
    Ok(builder.build())
}

/// A mailbox from configuration (`MAIL_FROM`, `CONTACT_EMAIL`).
pub fn parse_mailbox(value: &str, setting: &str) -> anyhow::Result<Mailbox> {
    value.parse::<Mailbox>().with_context(|| {
        format!("{setting} is not an e-mail address (e.g. `taskstream <noreply@example.com>`)")
    })
}

/// A template with `{{key}}` placeholders. Values go into the HTML part escaped.
pub struct Template {
    pub text: &'static str,
    pub html: &'static str,
}

macro_rules! template {
    ($name:literal) => {
        Template {
            text: include_str!(concat!("../../templates/mail/", $name, ".txt")),
            html: include_str!(concat!("../../templates/mail/", $name, ".html")),
        }
    };
}

pub const WELCOME: Template = template!("welcome");
pub const VERIFY_EMAIL: Template = template!("verify_email");
pub const PASSWORD_RESET: Template = template!("password_reset");
pub const PASSWORD_CHANGED: Template = template!("password_changed");
pub const CONTACT: Template = template!("contact");
pub const REMINDER: Template = template!("reminder");
pub const INVITATION: Template = template!("invitation");

impl Template {
    /// The plain-text and HTML parts with `values` filled in.
    pub fn render(&self, values: &[(&str, &str)]) -> (String, String) {
        let fill = |template: &str, escape: bool| {
            let mut out = template.to_string();
            for (key, value) in values {
                let value = if escape {
                    escape_html(value)
                } else {
                    (*value).to_string()
                };
                out = out.replace(&format!("{{{{{key}}}}}"), &value);
            }
            out
        };
        (fill(self.text, false), fill(self.html, true))
    }
}

fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_placeholder_and_escape_html() {
        let (text, html) = CONTACT.render(&[
            ("name", "Ada <script>"),
            ("email", "ada@example.com"),
            ("subject", "Hi & bye"),
            ("at", "2026-11-29 10:00 UTC"),
            ("id", "1"),
            ("message", "<b>bold</b>"),
        ]);
        assert!(text.contains("Ada <script>"));
        assert!(html.contains("Ada &lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("Hi &amp; bye"));
        assert!(!text.contains("{{") && !html.contains("{{"));
    }

    #[test]
    fn smtp_urls_are_checked() {
        for good in [
            "smtp://mail.example.com",
            "smtp://user:p%40ss@mail.example.com:2525?tls=none",
            "smtp://mail.example.com?tls=opportunistic",
            "smtps://user:pass@mail.example.com",
        ] {
            assert!(smtp_transport(good).is_ok(), "{good}");
        }
        for bad in [
            "http://mail.example.com",
            "smtp://",
            "smtp://mail.example.com?tls=maybe",
            "smtps://mail.example.com?tls=none",
            "not a url",
        ] {
            assert!(smtp_transport(bad).is_err(), "{bad}");
        }
    }
}
