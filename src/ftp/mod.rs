//! The FTP / FTPS client layer over suppaftp: connecting, listing a folder,
//! and streaming one file to disk with its SHA-256.
//!
//! What this module guarantees, because suppaftp does not by default:
//!
//! - `ftps://` means explicit TLS (AUTH TLS) with certificates checked
//!   against the webpki roots plus the connection's `ca_file`. A server that
//!   refuses AUTH TLS or presents an untrusted certificate is an error;
//!   there is never a fallback to plain text.
//! - Every socket, control and data, has a connect timeout and read/write
//!   timeouts ([`Timeouts`]); a silent server cannot hang `run-due`.
//! - Transfers are passive and binary (`TYPE I` right after login: servers
//!   start in ASCII, where some refuse SIZE and others rewrite line ends).
//! - The data connection goes to the control connection's peer address,
//!   whatever address the PASV reply advertises: servers behind NAT often
//!   advertise a private address, and following a PASV address elsewhere
//!   would let a hostile server point us at a third host.
//! - Listings use MLSD when the server has it, else LIST (Unix or DOS
//!   layout, see [`listing`]) refined by MDTM and SIZE.
//!
//! Traps: suppaftp logs every command it sends, `PASS` included, through
//! the `log` crate. segsync's logger (tracing-subscriber without its
//! `tracing-log` feature) installs no `log` backend, so those records are
//! dropped; `logging` caps the `suppaftp` target anyway in case a bridge is
//! ever added. Nothing here may format the password into a message.

pub mod listing;

use crate::config::FtpConn;
use crate::fetch::RemoteFile;
use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use listing::{Entry, Kind};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use suppaftp::types::FileType;
use suppaftp::{FtpError, RustlsConnector, RustlsFtpStream, Status};

/// How long to wait for the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a TCP connection, control or data.
    pub connect: Duration,
    /// Any single read or write once connected.
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(15),
            io: Duration::from_secs(60),
        }
    }
}

/// Which listing command a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingStyle {
    /// RFC 3659 machine listing, exact sizes and UTC times.
    Mlsd,
    /// Classic LIST, with MDTM and SIZE for the exact values.
    List,
}

/// A logged-in connection, in binary passive mode.
pub struct FtpSession {
    stream: RustlsFtpStream,
    name: String,
    url: String,
    timeouts: Timeouts,
    /// `None` until the first listing tells whether MLSD works.
    style: Option<ListingStyle>,
    /// Cleared when the server refuses MDTM, so it is asked only once.
    mdtm: bool,
    /// The real time at connection, to place the year-less dates of LIST
    /// output. The server formats them against its own real clock, so a
    /// `--now` pinned for segsync's decisions does not apply here.
    listed_at: DateTime<Utc>,
}

/// What [`FtpSession::download`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

impl FtpSession {
    /// Connects, secures the connection for `ftps://`, logs in and sets
    /// binary passive mode.
    pub fn connect(conn: &FtpConn, timeouts: &Timeouts) -> Result<FtpSession> {
        let url = conn.url();
        open(conn, timeouts)
            .with_context(|| format!("failed to connect to ftp `{}` ({url})", conn.name))
    }

    /// The connection's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The listing command in use, once the first listing chose it.
    pub fn listing_style(&self) -> Option<ListingStyle> {
        self.style
    }

    /// Forces a listing command; for servers whose MLSD is broken, and for
    /// tests of the LIST path against servers that have MLSD.
    pub fn use_listing(&mut self, style: ListingStyle) {
        self.style = Some(style);
    }

    /// Lists the regular files in `dir` (an absolute path on the server),
    /// leaving out folders, links, `.` and `..`.
    ///
    /// With LIST, sizes and times come from SIZE and MDTM for the files that
    /// can be uploads (`.csv` and `.csv.gz`); other files keep the rounded
    /// values of the listing, which nothing uses.
    pub fn list(&mut self, dir: &str) -> Result<Vec<RemoteFile>> {
        let (name, url) = (self.name.clone(), self.url.clone());
        self.list_inner(dir)
            .with_context(|| format!("failed to list `{dir}` on ftp `{name}` ({url})"))
    }

    fn list_inner(&mut self, dir: &str) -> Result<Vec<RemoteFile>> {
        self.cwd(dir)?;
        let entries = self.entries()?;
        let mut files = Vec::new();
        for e in entries {
            if e.kind != Kind::File || e.name == "." || e.name == ".." {
                continue;
            }
            let upload = e.name.ends_with(".csv") || e.name.ends_with(".csv.gz");
            // LIST sizes are usually right but not always (thousands
            // separators, rounding), so uploads get an exact SIZE.
            let size = if upload && (e.size.is_none() || !e.exact_time) {
                self.size(&e.name)?.or(e.size)
            } else {
                e.size
            };
            let modified = if e.exact_time || !upload {
                e.modified
            } else {
                self.mdtm(&e.name)?.or(e.modified)
            };
            match (size, modified) {
                (Some(size), Some(modified)) => files.push(RemoteFile {
                    name: e.name,
                    size,
                    modified,
                }),
                _ => tracing::warn!(
                    "ftp `{}`: skipping `{}` in `{dir}`: the server gives no size or time for it",
                    self.name,
                    e.name
                ),
            }
        }
        Ok(files)
    }

    /// Changes to `dir`, explaining a missing folder.
    fn cwd(&mut self, dir: &str) -> Result<()> {
        match self.stream.cwd(dir) {
            Ok(()) => Ok(()),
            Err(FtpError::UnexpectedResponse(r)) if r.status.code() == 550 => Err(anyhow!(
                "the folder does not exist or cannot be entered (the server replied `{}`); \
                 check the connection's `root` and the segment's `path`",
                reply(&r)
            )),
            Err(e) => Err(explain(e, &self.timeouts)),
        }
    }

    /// Lists the current folder with MLSD, falling back to LIST for good
    /// when the server does not know MLSD.
    fn entries(&mut self) -> Result<Vec<Entry>> {
        if self.style != Some(ListingStyle::List) {
            match self.lines("MLSD") {
                Ok(lines) => {
                    self.style = Some(ListingStyle::Mlsd);
                    return Ok(lines
                        .iter()
                        .filter_map(|l| listing::parse_mlsd(l))
                        .collect());
                }
                Err(FtpError::UnexpectedResponse(r))
                    if self.style.is_none() && (500..=504).contains(&r.status.code()) =>
                {
                    tracing::debug!("ftp `{}`: no MLSD ({}), using LIST", self.name, reply(&r));
                    self.style = Some(ListingStyle::List);
                }
                Err(e) => return Err(explain(e, &self.timeouts)),
            }
        }
        let lines = self.lines("LIST").map_err(|e| explain(e, &self.timeouts))?;
        let now = self.listed_at;
        let mut entries = Vec::new();
        for line in &lines {
            match listing::parse_list(line, now) {
                Some(e) => entries.push(e),
                None => tracing::debug!("ftp `{}`: ignoring listing line {line:?}", self.name),
            }
        }
        Ok(entries)
    }

    /// Runs a listing command on the current folder and reads its lines.
    /// Done here rather than with suppaftp's helpers so that a timeout on
    /// the data connection keeps its cause instead of becoming "bad
    /// response".
    fn lines(&mut self, command: &str) -> Result<Vec<String>, FtpError> {
        let (_, stream) = self
            .stream
            .custom_data_command(command, &[Status::AboutToSend, Status::AlreadyOpen])?;
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.trim_end_matches(['\r', '\n']);
                    if !text.is_empty() {
                        lines.push(text.to_string());
                    }
                }
                Err(e) => return Err(FtpError::ConnectionError(e)),
            }
        }
        reader.into_inner().finish()?;
        Ok(lines)
    }

    /// SIZE of `name` in the current folder; `None` when the server does
    /// not answer it.
    fn size(&mut self, name: &str) -> Result<Option<u64>> {
        match self.stream.size(name) {
            Ok(s) => Ok(Some(s as u64)),
            Err(FtpError::UnexpectedResponse(r)) => {
                tracing::debug!("ftp `{}`: SIZE `{name}`: {}", self.name, reply(&r));
                Ok(None)
            }
            Err(FtpError::BadResponse) => Ok(None),
            Err(e) => Err(explain(e, &self.timeouts)),
        }
    }

    /// MDTM of `name` in the current folder (UTC); `None` when the server
    /// does not answer it.
    fn mdtm(&mut self, name: &str) -> Result<Option<DateTime<Utc>>> {
        if !self.mdtm {
            return Ok(None);
        }
        match self.stream.mdtm(name) {
            Ok(t) => Ok(Some(Utc.from_utc_datetime(&t))),
            Err(FtpError::UnexpectedResponse(r)) => {
                if (500..=504).contains(&r.status.code()) {
                    self.mdtm = false;
                }
                tracing::debug!("ftp `{}`: MDTM `{name}`: {}", self.name, reply(&r));
                Ok(None)
            }
            Err(FtpError::BadResponse) => Ok(None),
            Err(e) => Err(explain(e, &self.timeouts)),
        }
    }

    /// Streams `file` from `dir` into `dest` (created or truncated),
    /// hashing as it goes, with a progress bar on stderr when `progress`.
    /// Fails unless exactly `file.size` bytes arrive. On failure `dest` may
    /// hold part of the file; the caller owns it.
    pub fn download(
        &mut self,
        dir: &str,
        file: &RemoteFile,
        dest: &Path,
        progress: bool,
    ) -> Result<Downloaded> {
        let (name, url) = (self.name.clone(), self.url.clone());
        self.download_inner(dir, file, dest, progress)
            .with_context(|| {
                format!(
                    "failed to download `{}` from ftp `{name}` ({url})",
                    file.name
                )
            })
    }

    fn download_inner(
        &mut self,
        dir: &str,
        file: &RemoteFile,
        dest: &Path,
        progress: bool,
    ) -> Result<Downloaded> {
        self.cwd(dir)?;
        let out = std::fs::File::create(dest)
            .with_context(|| format!("cannot create `{}`", dest.display()))?;
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
        let bar = progress.then(|| progress_bar(&file.name, file.size));

        let mut stream = self
            .stream
            .retr_as_stream(&file.name)
            .map_err(|e| explain(e, &self.timeouts))?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let received: Result<()> = loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(explain(FtpError::ConnectionError(e), &self.timeouts)),
            };
            hasher.update(&buf[..n]);
            bytes += n as u64;
            if let Err(e) = out.write_all(&buf[..n]) {
                break Err(anyhow!(e).context(format!("cannot write `{}`", dest.display())));
            }
            if let Some(b) = &bar {
                b.inc(n as u64);
            }
        };
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        if let Err(e) = received {
            // Dropping the transfer closes the data connection and reads
            // the server's reply, leaving the control connection usable.
            drop(stream);
            return Err(e);
        }
        stream.finish().map_err(|e| explain(e, &self.timeouts))?;
        out.flush()
            .with_context(|| format!("cannot write `{}`", dest.display()))?;

        if bytes != file.size {
            return Err(anyhow!(
                "received {bytes} bytes but the server listed {} bytes; the file may have \
                 changed during the transfer: the next run will try again",
                file.size
            ));
        }
        Ok(Downloaded {
            bytes,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// Says goodbye; errors are ignored since the work is done.
    pub fn quit(mut self) {
        let _ = self.stream.quit();
    }
}

/// Connects, logs in and lists the root of `conn`: the whole path a refresh
/// takes, short of downloading. Returns a one-line summary.
pub fn check(conn: &FtpConn, timeouts: &Timeouts) -> Result<String> {
    let mut session = FtpSession::connect(conn, timeouts)?;
    let root = crate::segment::remote_dir(&conn.root, "");
    let files = session.list(&root)?;
    let style = match session.listing_style() {
        Some(ListingStyle::Mlsd) => "MLSD",
        _ => "LIST",
    };
    let security = if conn.secure {
        "TLS verified"
    } else {
        "plain text"
    };
    session.quit();
    Ok(format!(
        "logged in as `{}` ({security}); root `{root}` lists {} file{} ({style})",
        conn.user,
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    ))
}

/// The steps of [`FtpSession::connect`], without the outer context.
fn open(conn: &FtpConn, timeouts: &Timeouts) -> Result<FtpSession> {
    let password = conn.password()?;
    // The url crate keeps the brackets of an IPv6 literal; sockets and TLS
    // server names want the bare address.
    let host = conn.host.trim_start_matches('[').trim_end_matches(']');
    let control = tcp_connect(host, conn.port, timeouts)?;
    // PASV can only describe an IPv4 address; over IPv6 use EPSV, which
    // gives a port only (and so also lands on the control peer).
    let mode = match control.peer_addr() {
        Ok(SocketAddr::V6(_)) => suppaftp::Mode::ExtendedPassive,
        _ => suppaftp::Mode::Passive,
    };
    let t = *timeouts;
    let mut stream = RustlsFtpStream::connect_with_stream(control)
        .map_err(|e| explain(e, timeouts))
        .context("no greeting from the server")?
        .passive_stream_builder(move |addr| data_connect(addr, &t));
    stream.set_mode(mode);
    stream.set_passive_nat_workaround(true);

    if conn.secure {
        let tls = tls_config(conn)?;
        stream = stream
            .into_secure(RustlsConnector::from(tls), host)
            .map_err(|e| match e {
                FtpError::UnexpectedResponse(r) if r.status.code() >= 500 => anyhow!(
                    "the server refused AUTH TLS (`{}`): it does not offer explicit TLS. \
                     segsync never falls back to plain text; enable TLS on the server, or \
                     use an ftp:// url if plain text is acceptable",
                    reply(&r)
                ),
                e => explain(e, timeouts),
            })?;
    }

    match stream.login(conn.user.as_str(), password.as_str()) {
        Ok(()) => {}
        Err(FtpError::UnexpectedResponse(r)) if r.status.code() == 530 => {
            let var = conn.password_env.as_deref().unwrap_or("(none: anonymous)");
            return Err(anyhow!(
                "login refused for user `{}` (the server replied `{}`); check `user` and the \
                 password in the environment variable {var}",
                conn.user,
                reply(&r)
            ));
        }
        Err(e) => return Err(explain(e, timeouts).context("login failed")),
    }
    stream
        .transfer_type(FileType::Binary)
        .map_err(|e| explain(e, timeouts))
        .context("the server refused binary mode (TYPE I)")?;

    Ok(FtpSession {
        stream,
        name: conn.name.clone(),
        url: conn.url(),
        timeouts: *timeouts,
        style: None,
        mdtm: true,
        listed_at: Utc::now(),
    })
}

/// Opens the control connection, trying each address of `host` in turn.
fn tcp_connect(host: &str, port: u16, t: &Timeouts) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve host `{host}`; check the url"))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, t.connect) {
            Ok(s) => {
                configure(&s, t).with_context(|| format!("cannot configure socket to {addr}"))?;
                return Ok(s);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    let Some((addr, e)) = last else {
        return Err(anyhow!("host `{host}` has no address; check the url"));
    };
    Err(match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => anyhow!(
            "cannot reach {addr}: timed out after {}s; check the host, the port and any \
             firewall",
            t.connect.as_secs()
        ),
        std::io::ErrorKind::ConnectionRefused => anyhow!(
            "cannot reach {addr}: connection refused; check the port in the url and that the \
             server is running"
        ),
        _ => anyhow!("cannot reach {addr}: {e}"),
    })
}

/// Opens a passive data connection with the same timeouts as the control
/// connection.
fn data_connect(addr: SocketAddr, t: &Timeouts) -> suppaftp::FtpResult<TcpStream> {
    let wrap = |e: std::io::Error| {
        FtpError::ConnectionError(std::io::Error::new(
            e.kind(),
            format!("cannot open the data connection to {addr}: {e}"),
        ))
    };
    let s = TcpStream::connect_timeout(&addr, t.connect).map_err(wrap)?;
    configure(&s, t).map_err(wrap)?;
    Ok(s)
}

fn configure(s: &TcpStream, t: &Timeouts) -> std::io::Result<()> {
    s.set_read_timeout(Some(t.io))?;
    s.set_write_timeout(Some(t.io))?;
    s.set_nodelay(true)
}

/// The TLS client configuration: webpki roots plus `ca_file`, ring
/// provider.
fn tls_config(conn: &FtpConn) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &conn.ca_file {
        let bad = |why: String| {
            crate::error::UsageError(format!(
                "ftp connection `{}`: `ca_file` `{}` {why}; point it to the PEM certificate of \
                 the CA that signed the server's certificate",
                conn.name,
                ca.display()
            ))
        };
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| bad(format!("cannot be read ({e})")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("is not valid PEM ({e})")))?;
        if certs.is_empty() {
            return Err(bad("holds no certificate".into()).into());
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| bad(format!("holds a certificate rustls refuses ({e})")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS library refused its default protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Turns a suppaftp error into a message a person can act on.
fn explain(e: FtpError, t: &Timeouts) -> anyhow::Error {
    match e {
        FtpError::ConnectionError(io) => explain_io(io, t),
        FtpError::SecureError(s) => anyhow!("TLS failed: {s}"),
        FtpError::UnexpectedResponse(r) => anyhow!("the server replied `{}`", reply(&r)),
        FtpError::BadResponse => anyhow!("the server sent a reply that is not valid FTP"),
        e => anyhow!("{e}"),
    }
}

fn explain_io(io: std::io::Error, t: &Timeouts) -> anyhow::Error {
    use std::io::ErrorKind;

    if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(why) => anyhow!(
                "the server's TLS certificate is not trusted ({why:?}); if the server uses a \
                 private CA, set `ca_file` to that CA's PEM certificate"
            ),
            other => anyhow!("TLS failed: {other}"),
        };
    }
    match io.kind() {
        // A socket read timeout surfaces as WouldBlock on Unix and TimedOut
        // on Windows.
        ErrorKind::WouldBlock | ErrorKind::TimedOut if io.get_ref().is_none() => {
            anyhow!("timed out after {}s", t.io.as_secs())
        }
        ErrorKind::TimedOut => anyhow!(
            "{io} (timed out after {}s); the server's passive ports may be blocked by a \
             firewall",
            t.connect.as_secs()
        ),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            anyhow!("the server closed the connection ({io})")
        }
        _ => anyhow!("{io}"),
    }
}

/// `550 No such file` from a reply, on one line.
fn reply(r: &suppaftp::types::Response) -> String {
    let text = String::from_utf8_lossy(&r.body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.starts_with(&r.status.code().to_string()) {
        text
    } else {
        format!("{} {text}", r.status.code())
    }
}

fn progress_bar(name: &str, size: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(name.to_string());
    bar
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn replies_are_one_line_with_their_code() {
        let r = |code: u32, body: &str| {
            suppaftp::types::Response::new(Status::from(code), body.as_bytes().to_vec())
        };
        assert_eq!(
            reply(&r(530, "530 Login incorrect.\r\n")),
            "530 Login incorrect."
        );
        assert_eq!(
            reply(&r(550, "550-No such file\r\n550 end\r\n")),
            "550-No such file 550 end"
        );
        assert_eq!(reply(&r(500, "Unknown command")), "500 Unknown command");
    }

    #[test]
    fn read_timeouts_say_how_long() {
        let t = Timeouts {
            connect: Duration::from_secs(3),
            io: Duration::from_secs(7),
        };
        let e = explain(
            FtpError::ConnectionError(std::io::ErrorKind::WouldBlock.into()),
            &t,
        );
        assert_eq!(e.to_string(), "timed out after 7s");
    }

    #[test]
    fn timeouts_have_sane_defaults() {
        let t = Timeouts::default();
        assert!(t.connect > Duration::ZERO && t.io >= t.connect);
    }
}
