//! A real SMTP server for the tests: `smtp_sink.py` (aiosmtpd) on a free loopback port, its
//! messages read back from the directory it writes them to.
//!
//! Without Python's aiosmtpd the mail tests are skipped, unless `TOLLGATE_REQUIRE_SMTP` is
//! set (as CI does), which makes them fail instead.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

pub struct MailSink {
    pub port: u16,
    dir: TempDir,
    _child: Child,
}

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The 8-digit code, as shown (`1234 5678`).
    pub fn code(&self) -> String {
        self.text
            .lines()
            .map(str::trim)
            .find(|line| {
                line.len() == 9
                    && line.as_bytes()[4] == b' '
                    && line.bytes().filter(u8::is_ascii_digit).count() == 8
            })
            .unwrap_or_else(|| panic!("no code in {}", self.text))
            .to_owned()
    }

    /// The link in the message.
    pub fn link(&self) -> String {
        self.text
            .split_whitespace()
            .find(|word| word.starts_with("http") && word.contains("?token="))
            .unwrap_or_else(|| panic!("no link in {}", self.text))
            .to_owned()
    }

    /// The token of the link.
    pub fn token(&self) -> String {
        let link = self.link();
        link.split("?token=").nth(1).unwrap_or_default().to_owned()
    }
}

fn python_with_aiosmtpd() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl MailSink {
    /// Starts a sink, or returns `None` (test skipped) when aiosmtpd is missing and not
    /// required.
    pub async fn start() -> Option<Self> {
        let Some(python) = python_with_aiosmtpd() else {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_SMTP").is_none(),
                "TOLLGATE_REQUIRE_SMTP is set but Python's aiosmtpd is missing \
                 (apt-get install python3-aiosmtpd)"
            );
            eprintln!("skipped: Python's aiosmtpd is missing (apt-get install python3-aiosmtpd)");
            return None;
        };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.local_addr().unwrap().port()
            };
            let mut child = Command::new(python)
                .arg(&script)
                .arg(port.to_string())
                .arg(dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
            if let Ok(Ok(Some(line))) = ready
                && line == "ready"
            {
                return Some(Self {
                    port,
                    dir,
                    _child: child,
                });
            }
        }
        panic!("the SMTP sink did not start");
    }

    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| {
                let record: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                Mail {
                    to: record["to"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_owned())
                        .collect(),
                    subject: record["subject"].as_str().unwrap().to_owned(),
                    text: record["text"].as_str().unwrap().to_owned(),
                    html: record["html"].as_str().unwrap().to_owned(),
                }
            })
            .collect()
    }

    /// The messages to `address`, oldest first.
    pub fn messages_to(&self, address: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .collect()
    }

    /// Waits (10 s at most) until `address` has received `count` messages; returns the last.
    pub async fn wait_for(&self, address: &str, count: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mail = self.messages_to(address);
            if mail.len() >= count {
                return mail[count - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{address} received {} messages, expected {count}",
                mail.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
