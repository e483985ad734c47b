//! A real FTP server for tests: libunftp over a folder, in-process, on a
//! random loopback port, with user/password login, optionally explicit
//! FTPS with a test CA made by the `openssl` CLI at test time.
//!
//! Typical use:
//!
//! ```ignore
//! let root = tempfile::tempdir().unwrap();
//! put_file(root.path(), "seg/high__1.csv", b"user_id,tier\n1,a\n", at("2020-10-01T00:00:00Z"));
//! let server = FtpServer::start(root.path());
//! let sb = Sandbox::new(&server.config("main", "/"));
//! let run = sb.run_ftp(&["check"]);   // sets the password variable for the child
//! ```
//!
//! Each server runs its own tokio runtime on a background thread; dropping
//! the [`FtpServer`] stops accepting connections and shuts the runtime down.

use chrono::{DateTime, Utc};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The user every test server accepts.
pub const USER: &str = "segsync-test";
/// Its password. Tests assert it never shows up in segsync's output.
pub const PASSWORD: &str = "pw-Zq7!secret-4e1b";
/// The environment variable the generated configs name as `password_env`.
pub const PASSWORD_ENV: &str = "SEGSYNC_TEST_FTP_PASSWORD";

/// How to start a server; `Default` is plain FTP with password login.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Offer explicit TLS (AUTH TLS) with a certificate from a fresh test CA.
    pub tls: bool,
    /// Advertise this address in PASV replies instead of the connection's
    /// own, as a server behind NAT does.
    pub passive_ip: Option<Ipv4Addr>,
    /// Listen on `[::1]` instead of 127.0.0.1.
    pub ipv6: bool,
}

/// A running test server.
pub struct FtpServer {
    port: u16,
    host: &'static str,
    root: PathBuf,
    certs: Option<TestCerts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A test CA and a server certificate it signed for 127.0.0.1/localhost.
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// Generates a CA and a server certificate (CA:FALSE, SAN for
    /// 127.0.0.1, ::1 and localhost) with the `openssl` CLI.
    pub fn generate() -> TestCerts {
        let dir = tempfile::tempdir().expect("tempdir for certs");
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n",
        )
        .unwrap();
        let steps: &[&[&str]] = &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-subj",
                "/CN=segsync test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "3650",
                "-extfile",
                "server.ext",
            ],
        ];
        for args in steps {
            let out = std::process::Command::new("openssl")
                .args(*args)
                .current_dir(d)
                .output()
                .expect("run the openssl CLI (needed to make test certificates)");
            assert!(
                out.status.success(),
                "openssl {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        TestCerts { dir }
    }

    /// The CA certificate (PEM) to trust as `ca_file`.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl FtpServer {
    /// Plain FTP over `root`, user [`USER`] with [`PASSWORD`].
    pub fn start(root: &Path) -> FtpServer {
        FtpServer::start_with(root, Options::default())
    }

    /// Explicit FTPS over `root`; trust [`FtpServer::ca_file`] to connect.
    pub fn start_tls(root: &Path) -> FtpServer {
        FtpServer::start_with(
            root,
            Options {
                tls: true,
                ..Options::default()
            },
        )
    }

    /// A server with the given options.
    pub fn start_with(root: &Path, opts: Options) -> FtpServer {
        let certs = opts.tls.then(TestCerts::generate);
        let host = if opts.ipv6 { "[::1]" } else { "127.0.0.1" };
        let listener = std::net::TcpListener::bind(format!("{host}:0")).expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));

        let root_owned = root.to_path_buf();
        let tls_files = certs.as_ref().map(|c| (c.cert(), c.key()));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // One thread on purpose: libunftp switches the control channel
            // to TLS through an internal message sent by a spawned task, and
            // on a multi-threaded runtime the client's TLS hello can win the
            // race and be read as a command, breaking the handshake.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    if stop_flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let server = build(&root_owned, tls_files.clone(), opts.passive_ip);
                    tokio::spawn(async move {
                        let _ = server.service(stream).await;
                    });
                }
            });
            rt.shutdown_background();
        });

        FtpServer {
            port,
            host,
            root: root.to_path_buf(),
            certs,
            stop,
            thread: Some(thread),
        }
    }

    /// The port it listens on (on 127.0.0.1, or `[::1]`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder it serves.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ftp://127.0.0.1:PORT` or `ftps://127.0.0.1:PORT` (`[::1]` for
    /// IPv6).
    pub fn url(&self) -> String {
        let scheme = if self.certs.is_some() { "ftps" } else { "ftp" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// The test CA certificate, for a TLS server.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.certs.as_ref().map(TestCerts::ca)
    }

    /// An `[[ftp]]` block for this server named `name` with root folder
    /// `root`, trusting the test CA when TLS is on.
    pub fn config(&self, name: &str, root: &str) -> String {
        let mut s = format!(
            "[[ftp]]\nname = \"{name}\"\nurl = \"{}\"\nroot = \"{root}\"\nuser = \"{USER}\"\n\
             password_env = \"{PASSWORD_ENV}\"\n",
            self.url()
        );
        if let Some(ca) = self.ca_file() {
            s.push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
        }
        s
    }

    /// The same connection as a `segsync::config::FtpConn`, for library
    /// tests. The password is read from [`PASSWORD_ENV`], which the test
    /// process must set (see [`export_password`]).
    pub fn conn(&self, name: &str, root: &str) -> segsync::config::FtpConn {
        let toml = self.config(name, root);
        let cfg = segsync::config::Config::parse(&toml, Path::new("/tmp/segments.toml"))
            .expect("generated config parses");
        cfg.ftp.into_iter().next().expect("one connection")
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(format!("{}:{}", self.host, self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn build(
    root: &Path,
    tls: Option<(PathBuf, PathBuf)>,
    passive_ip: Option<Ipv4Addr>,
) -> libunftp::Server<unftp_sbe_fs::Filesystem, unftp_core::auth::DefaultUser> {
    let root = root.to_path_buf();
    let mut b = libunftp::ServerBuilder::with_authenticator(
        Box::new(move || unftp_sbe_fs::Filesystem::new(root.clone()).expect("serve folder")),
        Arc::new(PasswordAuth),
    )
    .greeting("segsync test server");
    if let Some((cert, key)) = tls {
        b = b.ftps(cert, key);
    }
    if let Some(ip) = passive_ip {
        b = b.passive_host(ip);
    }
    b.build().expect("build libunftp server")
}

/// Accepts [`USER`] with [`PASSWORD`] only.
#[derive(Debug)]
struct PasswordAuth;

#[async_trait::async_trait]
impl unftp_core::auth::Authenticator for PasswordAuth {
    async fn authenticate(
        &self,
        username: &str,
        creds: &unftp_core::auth::Credentials,
    ) -> Result<unftp_core::auth::Principal, unftp_core::auth::AuthenticationError> {
        if username != USER {
            return Err(unftp_core::auth::AuthenticationError::BadUser);
        }
        if creds.password.as_deref() != Some(PASSWORD) {
            return Err(unftp_core::auth::AuthenticationError::BadPassword);
        }
        Ok(unftp_core::auth::Principal {
            username: username.to_string(),
        })
    }
}

/// Sets [`PASSWORD_ENV`] in this test process, for library calls that read
/// the password (child processes get it through [`FtpSandbox`] instead).
/// Done once per process: the value never changes, and setting the
/// environment while other threads read it is best kept to one moment.
pub fn export_password() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var(PASSWORD_ENV, PASSWORD));
}

/// Writes `contents` to `root/rel` (creating folders) and sets its
/// modification time to `modified`. Returns the file's path.
pub fn put_file(root: &Path, rel: &str, contents: &[u8], modified: DateTime<Utc>) -> PathBuf {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(&p, contents).unwrap();
    set_modified(&p, modified);
    p
}

/// Sets the modification time of the file at `path`.
pub fn set_modified(path: &Path, modified: DateTime<Utc>) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} to set its time: {e}", path.display()));
    f.set_modified(modified.into()).expect("set mtime");
}

/// Parses an RFC 3339 time, for test brevity.
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("RFC 3339 time")
        .with_timezone(&Utc)
}
