//! Progress while a scenario runs: an indicatif bar on a terminal, a plain line every few
//! seconds otherwise (CI logs, pipes), nothing when quiet.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a scenario reports while it runs.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub progress: bool,
}

impl Ui {
    pub fn quiet() -> Self {
        Self { progress: false }
    }

    pub fn interactive() -> Self {
        Self { progress: true }
    }
}

enum Mode {
    Bar(ProgressBar),
    Plain {
        label: String,
        last: Mutex<Option<Instant>>,
    },
    Off,
}

/// One phase's progress ("signup", "connect", "run", ...).
pub struct Progress {
    mode: Mode,
}

/// Plain progress lines come at most this often.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

impl Progress {
    /// A phase of `len` steps (`None` for a spinner).
    pub fn new(ui: Ui, label: &str, len: Option<u64>) -> Self {
        if !ui.progress {
            return Self { mode: Mode::Off };
        }
        if !std::io::stderr().is_terminal() {
            eprintln!("[{label}] started");
            return Self {
                mode: Mode::Plain {
                    label: label.to_string(),
                    last: Mutex::new(Some(Instant::now())),
                },
            };
        }
        let bar = match len {
            Some(len) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = if len.is_some() {
            "{prefix:>9} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}"
        } else {
            "{prefix:>9} [{elapsed_precise}] {spinner} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            mode: Mode::Bar(bar),
        }
    }

    pub fn set_position(&self, pos: u64) {
        if let Mode::Bar(bar) = &self.mode {
            bar.set_position(pos);
        }
    }

    pub fn inc(&self, n: u64) {
        if let Mode::Bar(bar) = &self.mode {
            bar.inc(n);
        }
    }

    /// The status text; on a plain stream it is printed every couple of seconds.
    pub fn set_message(&self, message: impl Into<String>) {
        match &self.mode {
            Mode::Bar(bar) => bar.set_message(message.into()),
            Mode::Plain { label, last } => {
                let Ok(mut last) = last.lock() else {
                    return;
                };
                if last.is_none_or(|at| at.elapsed() >= PLAIN_EVERY) {
                    *last = Some(Instant::now());
                    eprintln!("[{label}] {}", message.into());
                }
            }
            Mode::Off => {}
        }
    }

    /// Ends the phase, leaving `message` as its last word.
    pub fn finish(&self, message: impl Into<String>) {
        match &self.mode {
            Mode::Bar(bar) => bar.finish_with_message(message.into()),
            Mode::Plain { label, .. } => eprintln!("[{label}] done: {}", message.into()),
            Mode::Off => {}
        }
    }

    /// Prints a line above the bar (or on stderr).
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.mode {
            Mode::Bar(bar) => bar.println(line.as_ref()),
            Mode::Plain { .. } => eprintln!("{}", line.as_ref()),
            Mode::Off => {}
        }
    }
}

/// A warning for the operator, shown even when progress is quiet.
pub fn warn(message: impl AsRef<str>) {
    eprintln!("warning: {}", message.as_ref());
}
