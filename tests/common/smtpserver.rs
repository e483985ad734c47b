//! A small but real SMTP server on loopback for the notification tests.
//!
//! It speaks the protocol lettre uses (EHLO, STARTTLS, AUTH PLAIN and
//! LOGIN, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT), over
//! plain TCP, STARTTLS or implicit TLS (rustls with ring), and keeps every
//! accepted message and every AUTH attempt for the test to inspect. It can
//! be told to refuse recipients or the message. One thread per connection;
//! the threads end with the test process.
//!
//! Certificates come from [`Certs::generate`], which runs the `openssl`
//! command-line tool: a throwaway CA, and a server certificate for
//! `127.0.0.1` and `localhost` signed by it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A CA and a server certificate signed by it, in a temporary folder.
pub struct Certs {
    /// The CA certificate, for `ca_file`.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// Keeps the generated files alive.
    _made: super::ftpserver::TestCerts,
}

impl Certs {
    /// A CA and a server certificate for `127.0.0.1` and `localhost`
    /// (basicConstraints CA:FALSE), made by the FTP helper's generator.
    pub fn generate() -> Certs {
        let made = super::ftpserver::TestCerts::generate();
        Certs {
            ca: made.ca(),
            cert: made.cert(),
            key: made.key(),
            _made: made,
        }
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&self.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }
}

/// How the server secures connections.
#[derive(Clone)]
pub enum Security {
    /// Plain text; STARTTLS not offered.
    Plain,
    /// Plain greeting, STARTTLS offered.
    StartTls(Arc<ServerConfig>),
    /// TLS from the first byte.
    Implicit(Arc<ServerConfig>),
}

impl Security {
    pub fn starttls(certs: &Certs) -> Security {
        Security::StartTls(certs.server_config())
    }

    pub fn implicit(certs: &Certs) -> Security {
        Security::Implicit(certs.server_config())
    }
}

/// What the server accepts.
#[derive(Clone)]
pub struct Options {
    pub security: Security,
    /// Required login (user, password): MAIL is refused until it is given.
    pub login: Option<(String, String)>,
    /// Answer every RCPT with 550.
    pub reject_rcpt: bool,
    /// Answer DATA with 554.
    pub reject_data: bool,
}

impl Options {
    pub fn new(security: Security) -> Options {
        Options {
            security,
            login: None,
            reject_rcpt: false,
            reject_data: false,
        }
    }
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and encoded body), CRLF line ends.
    pub data: String,
    /// Whether it arrived over TLS.
    pub tls: bool,
    /// The user it was sent as, if any.
    pub user: Option<String>,
}

impl Received {
    /// A header's value, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The body, decoded from its Content-Transfer-Encoding, with LF ends.
    pub fn body(&self) -> String {
        let raw = self.data.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        let bytes = match self
            .header("Content-Transfer-Encoding")
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("quoted-printable") => decode_qp(raw),
            Some("base64") => base64(&raw.replace("\r\n", "")).expect("base64 body"),
            _ => raw.as_bytes().to_vec(),
        };
        String::from_utf8(bytes)
            .expect("utf-8 body")
            .replace("\r\n", "\n")
    }
}

/// One AUTH attempt as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAttempt {
    pub user: String,
    pub password: String,
    pub tls: bool,
}

#[derive(Default)]
struct Seen {
    messages: Vec<Received>,
    auth: Vec<AuthAttempt>,
    connections: usize,
}

/// A running server.
pub struct SmtpServer {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
}

impl SmtpServer {
    /// Starts a server on a free loopback port.
    pub fn start(opts: Options) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let opts = opts.clone();
                let seen = shared.clone();
                seen.lock().unwrap().connections += 1;
                std::thread::spawn(move || {
                    let _ = session(stream, &opts, &seen);
                });
            }
        });
        SmtpServer { port, seen }
    }

    /// Messages accepted so far.
    pub fn messages(&self) -> Vec<Received> {
        self.seen.lock().unwrap().messages.clone()
    }

    /// AUTH attempts so far.
    pub fn auth_attempts(&self) -> Vec<AuthAttempt> {
        self.seen.lock().unwrap().auth.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen.lock().unwrap().connections
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    Gone,
}

impl Conn {
    fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    fn send(&mut self, line: &str) -> std::io::Result<()> {
        let bytes = format!("{line}\r\n");
        match self {
            Conn::Plain(s) => s.write_all(bytes.as_bytes()),
            Conn::Tls(s) => {
                s.write_all(bytes.as_bytes())?;
                s.flush()
            }
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Reads one line without its CRLF; byte by byte so that nothing is
    /// buffered past a STARTTLS.
    fn line(&mut self) -> std::io::Result<String> {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        loop {
            let n = match self {
                Conn::Plain(s) => s.read(&mut b)?,
                Conn::Tls(s) => s.read(&mut b)?,
                Conn::Gone => 0,
            };
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if b[0] == b'\n' {
                if out.last() == Some(&b'\r') {
                    out.pop();
                }
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.push(b[0]);
        }
    }

    fn upgrade(&mut self, config: &Arc<ServerConfig>) {
        if let Conn::Plain(s) = std::mem::replace(self, Conn::Gone) {
            let tls = ServerConnection::new(config.clone()).unwrap();
            *self = Conn::Tls(Box::new(StreamOwned::new(tls, s)));
        }
    }
}

fn session(stream: TcpStream, opts: &Options, seen: &Mutex<Seen>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut c = Conn::Plain(stream);
    if let Security::Implicit(cfg) = &opts.security {
        c.upgrade(cfg);
    }
    c.send("220 localhost segsync test ESMTP")?;

    let mut user: Option<String> = None;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    loop {
        let line = c.line()?;
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        match verb.as_str() {
            "EHLO" => {
                let mut caps = vec!["localhost".to_string()];
                let starttls = matches!(opts.security, Security::StartTls(_)) && !c.is_tls();
                if starttls {
                    caps.push("STARTTLS".into());
                }
                if opts.login.is_some() {
                    caps.push("AUTH PLAIN LOGIN".into());
                }
                caps.push("8BITMIME".into());
                let last = caps.len() - 1;
                for (i, cap) in caps.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    c.send(&format!("250{sep}{cap}"))?;
                }
            }
            "HELO" => c.send("250 localhost")?,
            "STARTTLS" => match &opts.security {
                Security::StartTls(cfg) if !c.is_tls() => {
                    c.send("220 2.0.0 ready to start TLS")?;
                    c.upgrade(cfg);
                    user = None;
                    from = None;
                    to.clear();
                }
                _ => c.send("502 5.5.1 STARTTLS not available")?,
            },
            "AUTH" => {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let mech = parts
                    .get(1)
                    .map(|m| m.to_ascii_uppercase())
                    .unwrap_or_default();
                let (u, p) = match mech.as_str() {
                    "PLAIN" => {
                        let b64 = match parts.get(2) {
                            Some(x) => x.to_string(),
                            None => {
                                c.send("334 ")?;
                                c.line()?
                            }
                        };
                        let raw = base64(&b64).unwrap_or_default();
                        let fields: Vec<String> = raw
                            .split(|b| *b == 0)
                            .map(|f| String::from_utf8_lossy(f).into_owned())
                            .collect();
                        (
                            fields.get(1).cloned().unwrap_or_default(),
                            fields.get(2).cloned().unwrap_or_default(),
                        )
                    }
                    "LOGIN" => {
                        c.send("334 VXNlcm5hbWU6")?;
                        let u = base64(&c.line()?).unwrap_or_default();
                        c.send("334 UGFzc3dvcmQ6")?;
                        let p = base64(&c.line()?).unwrap_or_default();
                        (
                            String::from_utf8_lossy(&u).into_owned(),
                            String::from_utf8_lossy(&p).into_owned(),
                        )
                    }
                    _ => {
                        c.send("504 5.5.4 mechanism not supported")?;
                        continue;
                    }
                };
                seen.lock().unwrap().auth.push(AuthAttempt {
                    user: u.clone(),
                    password: p.clone(),
                    tls: c.is_tls(),
                });
                match &opts.login {
                    Some((lu, lp)) if *lu == u && *lp == p => {
                        user = Some(u);
                        c.send("235 2.7.0 authentication successful")?;
                    }
                    _ => c.send("535 5.7.8 authentication credentials invalid")?,
                }
            }
            "MAIL" => {
                if opts.login.is_some() && user.is_none() {
                    c.send("530 5.7.0 authentication required")?;
                } else {
                    from = Some(angle(&line));
                    to.clear();
                    c.send("250 2.1.0 ok")?;
                }
            }
            "RCPT" => {
                if from.is_none() {
                    c.send("503 5.5.1 MAIL first")?;
                } else if opts.reject_rcpt {
                    c.send("550 5.1.1 mailbox unavailable")?;
                } else {
                    to.push(angle(&line));
                    c.send("250 2.1.5 ok")?;
                }
            }
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    c.send("503 5.5.1 no valid recipients")?;
                    continue;
                }
                if opts.reject_data {
                    c.send("554 5.7.1 message refused by policy")?;
                    continue;
                }
                c.send("354 end with <CRLF>.<CRLF>")?;
                let mut data = String::new();
                loop {
                    let l = c.line()?;
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                seen.lock().unwrap().messages.push(Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                    tls: c.is_tls(),
                    user: user.clone(),
                });
                c.send("250 2.0.0 queued")?;
            }
            "RSET" => {
                from = None;
                to.clear();
                c.send("250 2.0.0 ok")?;
            }
            "NOOP" => c.send("250 2.0.0 ok")?,
            "QUIT" => {
                c.send("221 2.0.0 bye")?;
                return Ok(());
            }
            _ => c.send("500 5.5.2 command not recognized")?,
        }
    }
}

/// The address between `<` and `>`.
fn angle(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end.max(start)].to_string()
}

/// Decodes standard base64 (padding optional).
pub fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for ch in s.trim().bytes() {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn decode_qp(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
