//! A real SMTP server in the test process: the `mailin` protocol library (what
//! `mailin-embedded` is built on) over tokio sockets this module controls, so that a test
//! can stop the server and start it again on the same port. What taskstream sends is kept
//! raw and parsed (`mail-parser`), for tests to read as a person would.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One message as received, with its parts.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope's sender and recipients (MAIL FROM, RCPT TO).
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub subject: String,
    /// The `From`, `To` and `Reply-To` headers' addresses.
    pub from: String,
    pub to: Vec<String>,
    pub reply_to: Option<String>,
    pub text: String,
    pub html: String,
    pub raw: Vec<u8>,
}

impl ReceivedMail {
    /// A message as written to a file (`.eml`, when no SMTP server is configured).
    pub fn from_file(raw: Vec<u8>) -> Self {
        Self::parse(String::new(), Vec::new(), raw)
    }

    fn parse(envelope_from: String, envelope_to: Vec<String>, raw: Vec<u8>) -> Self {
        let parsed = mail_parser::MessageParser::default().parse(&raw);
        let addresses = |list: Option<&mail_parser::Address>| -> Vec<String> {
            list.map(|a| {
                a.iter()
                    .filter_map(|addr| addr.address().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
        };
        let (subject, from, to, reply_to, text, html) = match &parsed {
            Some(message) => (
                message.subject().unwrap_or_default().to_string(),
                addresses(message.from())
                    .into_iter()
                    .next()
                    .unwrap_or_default(),
                addresses(message.to()),
                addresses(message.reply_to()).into_iter().next(),
                message
                    .body_text(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
                message
                    .body_html(0)
                    .map(|t| t.into_owned())
                    .unwrap_or_default(),
            ),
            None => Default::default(),
        };
        Self {
            envelope_from,
            envelope_to,
            subject,
            from,
            to,
            reply_to,
            text,
            html,
            raw,
        }
    }

    /// The token of the first link in the text part that carries one (`?token=`).
    pub fn link_token(&self) -> Option<String> {
        let at = self.text.find("?token=")? + "?token=".len();
        Some(
            self.text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        )
    }
}

#[derive(Default)]
struct Mailbox {
    messages: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
}

/// One connection's transaction, handed to the shared mailbox at the end of DATA.
#[derive(Clone)]
struct Receiver {
    mailbox: Arc<Mailbox>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Receiver {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_string();
        self.to.clear();
        self.data.clear();
        mailin::response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.to.push(to.to_string());
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = ReceivedMail::parse(
            std::mem::take(&mut self.from),
            std::mem::take(&mut self.to),
            std::mem::take(&mut self.data),
        );
        self.mailbox
            .messages
            .lock()
            .expect("mailbox lock")
            .push(mail);
        self.mailbox.arrived.notify_waiters();
        mailin::response::OK
    }
}

/// An SMTP server on 127.0.0.1 (plain text: taskstream's `SMTP_URL` says `?tls=none`).
pub struct SmtpServer {
    port: u16,
    mailbox: Arc<Mailbox>,
    running: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpServer {
    /// A server on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        let server = Self {
            port,
            mailbox: Arc::new(Mailbox::default()),
            running: Mutex::new(None),
        };
        server.serve(listener);
        server
    }

    /// A server that is not running yet, on a port nothing listens on: taskstream's
    /// connections are refused until [`SmtpServer::resume`].
    pub async fn stopped() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        Self {
            port,
            mailbox: Arc::new(Mailbox::default()),
            running: Mutex::new(None),
        }
    }

    /// What `SMTP_URL` should say.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Stops accepting and drops open connections (the port is closed).
    pub fn stop(&self) {
        if let Some(task) = self.running.lock().expect("lock").take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .await
            .expect("bind the SMTP port again");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let mailbox = self.mailbox.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                let handler = Receiver {
                    mailbox: mailbox.clone(),
                    from: String::new(),
                    to: Vec::new(),
                    data: Vec::new(),
                };
                connections.spawn(async move {
                    let _ = session(stream, peer.ip(), handler).await;
                });
            }
        });
        *self.running.lock().expect("lock") = Some(task);
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.mailbox.messages.lock().expect("lock").clone()
    }

    /// Waits until `count` messages have arrived (panics with what did after `timeout`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        self.wait_until(timeout, |m| m.len() >= count).await
    }

    /// The first message to `address` whose subject contains `subject`, waiting for it.
    pub async fn wait_for_mail(&self, address: &str, subject: &str) -> ReceivedMail {
        let matches =
            |m: &ReceivedMail| m.to.iter().any(|to| to == address) && m.subject.contains(subject);
        let all = self
            .wait_until(Duration::from_secs(20), |all| all.iter().any(matches))
            .await;
        all.into_iter().find(matches).expect("found")
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedMail]) -> bool,
    ) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.mailbox.arrived.notified();
            let messages = self.messages();
            if done(&messages) {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let subjects: Vec<(Vec<String>, String)> = self
                    .messages()
                    .into_iter()
                    .map(|m| (m.to, m.subject))
                    .collect();
                panic!("the expected mail did not arrive; received: {subjects:?}");
            }
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One SMTP conversation, line by line through mailin's state machine.
async fn session(
    stream: tokio::net::TcpStream,
    peer: IpAddr,
    handler: Receiver,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut session = SessionBuilder::new("taskstream-test-smtp").build(peer, handler);
    write.write_all(&session.greeting().buffer()?).await?;
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => {}
            Action::Reply => write.write_all(&response.buffer()?).await?,
            Action::Close | Action::UpgradeTls => {
                write.write_all(&response.buffer()?).await?;
                return Ok(());
            }
        }
    }
}
