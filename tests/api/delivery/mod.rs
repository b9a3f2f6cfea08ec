//! Reaching people who are not connected: e-mail through a real SMTP server (and `.eml`
//! files without one), due-date reminders, and web push to a real push receiver.

mod mail;
mod push;
mod reminders;

use testkit::{Backend, SmtpServer, TestApp};

/// A server that mails through `smtp`, retrying failed sends quickly.
pub async fn app_with_smtp(
    backend: Backend,
    smtp: &SmtpServer,
    adjust: impl FnOnce(&mut taskstream::config::Config),
) -> TestApp {
    let url = smtp.url();
    TestApp::spawn_with(backend, move |config| {
        config.delivery.smtp_url = Some(taskstream::config::Secret::new(url));
        config.delivery.mail_from = "taskstream <noreply@taskstream.test>".into();
        config.delivery.retry_base = std::time::Duration::from_millis(50);
        adjust(config);
    })
    .await
}

/// Waits until the outbox holds nothing pending (every delivery sent, skipped or failed).
pub async fn wait_until_settled(app: &TestApp) {
    app.wait_for_number(
        "SELECT count(*) FROM deliveries WHERE status = 'pending'",
        |pending| pending == 0,
    )
    .await;
}
