//! `segments.toml`: finding it, parsing it, and refusing every mistake.
//!
//! The file is parsed into a raw form that keeps each value's position, then
//! checked into [`Config`]. Every refusal names the file, the line and the
//! key. Passwords are never in the file: a connection names the environment
//! variable that holds its password, read only when a connection is made
//! (see [`FtpConn::password`]), so `list` or `show` work without them.

use crate::error::UsageError;
use anyhow::Result;
use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The most FTP connections a configuration may define.
pub const MAX_FTP: usize = 5;

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub database: PathBuf,
    pub timezone: Tz,
    pub sync_time: NaiveTime,
    pub min_file_age: Duration,
    pub max_rejected_ratio: f64,
    pub retry: Retry,
    pub ftp: Vec<FtpConn>,
    pub smtp: Option<Smtp>,
    /// Addresses that may receive notifications; `None` allows any.
    pub members: Option<Vec<String>>,
}

/// Attempts per slot and the wait between them.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff: Duration,
}

/// One `[[ftp]]` connection.
#[derive(Debug, Clone)]
pub struct FtpConn {
    pub name: String,
    /// `true` for `ftps://` (explicit TLS with AUTH TLS).
    pub secure: bool,
    pub host: String,
    pub port: u16,
    /// Root folder on the server; segment paths are relative to it.
    pub root: String,
    pub user: String,
    /// Name of the environment variable that holds the password.
    pub password_env: Option<String>,
    /// Extra CA certificate (PEM) to trust for FTPS.
    pub ca_file: Option<PathBuf>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `tls = "none"`: plain text, only to a loopback relay.
    None,
}

/// The `[smtp]` section.
#[derive(Debug, Clone)]
pub struct Smtp {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    pub from: String,
    pub user: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl FtpConn {
    /// Reads the password from its environment variable. An anonymous
    /// connection (no `password_env`) gets an empty password.
    pub fn password(&self) -> Result<String> {
        read_secret(
            self.password_env.as_deref(),
            &format!("ftp connection `{}`", self.name),
        )
    }

    /// `ftp://host:port` or `ftps://host:port`, for messages.
    pub fn url(&self) -> String {
        let scheme = if self.secure { "ftps" } else { "ftp" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

impl Smtp {
    /// Reads the password from its environment variable, if one is named.
    pub fn password(&self) -> Result<Option<String>> {
        match &self.password_env {
            None => Ok(None),
            Some(var) => read_secret(Some(var), "smtp").map(Some),
        }
    }
}

fn read_secret(var: Option<&str>, what: &str) -> Result<String> {
    let Some(var) = var else {
        return Ok(String::new());
    };
    match std::env::var(var) {
        Ok(v) => Ok(v),
        Err(_) => Err(UsageError(format!(
            "{what}: environment variable `{var}` (its `password_env`) is not set; export it \
             before running segsync"
        ))
        .into()),
    }
}

impl Config {
    /// Finds the configuration: `--config`, else `$SEGSYNC_CONFIG`, else
    /// `./segments.toml`, and loads it.
    pub fn find_and_load(explicit: Option<&Path>) -> Result<Config> {
        let (path, how) = match explicit {
            Some(p) => (p.to_path_buf(), "--config"),
            None => match std::env::var_os("SEGSYNC_CONFIG") {
                Some(p) if !p.is_empty() => (PathBuf::from(p), "$SEGSYNC_CONFIG"),
                _ => (
                    PathBuf::from("segments.toml"),
                    "the default ./segments.toml",
                ),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UsageError(format!(
                    "no configuration at `{}` (from {how}): pass --config PATH, set \
                     SEGSYNC_CONFIG, or create segments.toml (see the README)",
                    path.display()
                ))
                .into())
            }
            // A folder, a binary file, no permission: still the user's choice of
            // file, so a configuration error (exit 2) saying which file and why.
            Err(e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::InvalidData => "it is not UTF-8 text".to_string(),
                    _ if path.is_dir() => "it is a folder".to_string(),
                    _ => e.to_string(),
                };
                return Err(UsageError(format!(
                    "cannot read the configuration `{}` (from {how}): {why}; point it at a \
                     segments.toml file",
                    path.display()
                ))
                .into());
            }
        };
        Config::parse(&text, &path)
    }

    /// Parses and checks configuration text read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            // serde names Rust types; say what to write instead.
            let msg = e
                .to_string()
                .trim_end()
                .replace("expected f64", "expected a number such as 0.05")
                .replace("expected i64", "expected a whole number such as 3")
                .replace("expected a string", "expected a quoted string");
            UsageError(format!("{}: {msg}", path.display()))
        })?;
        let ctx = Ctx { text, path };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() || dir.as_os_str().is_empty() {
                p
            } else {
                dir.join(p)
            }
        };

        let database = match &raw.database {
            Some(d) if d.get_ref().trim().is_empty() => {
                return Err(ctx.err(d.span(), "database", "must name a file"))
            }
            Some(d) => resolve(d.get_ref()),
            None => resolve("segments.db"),
        };

        let timezone = match &raw.timezone {
            None => Tz::UTC,
            Some(tz) => tz.get_ref().parse::<Tz>().map_err(|_| {
                ctx.err(
                    tz.span(),
                    "timezone",
                    &format!(
                        "`{}` is not an IANA time zone; use a name such as `Europe/Paris` or \
                         `Asia/Kolkata`",
                        tz.get_ref()
                    ),
                )
            })?,
        };

        let sync_time = match &raw.sync_time {
            None => NaiveTime::from_hms_opt(2, 0, 0).expect("valid time"),
            Some(t) => parse_hhmm(t.get_ref()).ok_or_else(|| {
                ctx.err(
                    t.span(),
                    "sync_time",
                    &format!(
                        "`{}` is not a time of day as HH:MM, e.g. `02:00`",
                        t.get_ref()
                    ),
                )
            })?,
        };

        let min_file_age = match &raw.min_file_age {
            None => Duration::from_secs(120),
            Some(d) => ctx.duration(d, "min_file_age")?,
        };

        let max_rejected_ratio = match &raw.max_rejected_ratio {
            None => 0.05,
            Some(r) => {
                let v = *r.get_ref();
                if !(0.0..=1.0).contains(&v) {
                    return Err(ctx.err(
                        r.span(),
                        "max_rejected_ratio",
                        &format!("{v} is not a share between 0 and 1, e.g. 0.05 for 5%"),
                    ));
                }
                v
            }
        };

        let mut retry = Retry {
            max_attempts: 3,
            backoff: Duration::from_secs(30 * 60),
        };
        if let Some(r) = &raw.retry {
            if let Some(n) = &r.max_attempts {
                if !(1..=100).contains(n.get_ref()) {
                    return Err(ctx.err(
                        n.span(),
                        "retry.max_attempts",
                        "must be a whole number from 1 to 100",
                    ));
                }
                retry.max_attempts = *n.get_ref() as u32;
            }
            if let Some(b) = &r.backoff {
                retry.backoff = ctx.duration(b, "retry.backoff")?;
            }
        }

        let mut ftp = Vec::new();
        let mut names = HashSet::new();
        for (i, f) in raw.ftp.iter().enumerate() {
            if i == MAX_FTP {
                return Err(ctx.err(
                    f.name.span(),
                    "ftp",
                    &format!(
                        "{} [[ftp]] connections are configured; at most {MAX_FTP} are allowed",
                        raw.ftp.len()
                    ),
                ));
            }
            let name = f.name.get_ref().clone();
            if let Err(e) = crate::segment::check_name(&name) {
                return Err(ctx.err(
                    f.name.span(),
                    "ftp.name",
                    &e.replace("segment", "connection"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(ctx.err(
                    f.name.span(),
                    "ftp.name",
                    &format!("connection `{name}` is defined twice; give each a distinct name"),
                ));
            }
            let (scheme, host, port) = ctx.url(&f.url, "ftp.url", &["ftp", "ftps"])?;
            let secure = scheme == "ftps";
            if f.ca_file.is_some() && !secure {
                return Err(ctx.err(
                    f.url.span(),
                    "ftp.ca_file",
                    &format!("connection `{name}` sets ca_file but its url is not ftps://"),
                ));
            }
            ftp.push(FtpConn {
                name,
                secure,
                host,
                port: port.unwrap_or(21),
                root: f.root.clone().unwrap_or_else(|| "/".into()),
                user: f.user.clone().unwrap_or_else(|| "anonymous".into()),
                password_env: f.password_env.clone(),
                ca_file: ctx.ca_file(&f.ca_file, "ftp.ca_file", &resolve)?,
            });
        }

        let smtp = match &raw.smtp {
            None => None,
            Some(s) => {
                let (scheme, host, port) = ctx.url(&s.url, "smtp.url", &["smtp", "smtps"])?;
                let mut security = if scheme == "smtps" {
                    SmtpSecurity::Implicit
                } else {
                    SmtpSecurity::StartTls
                };
                if let Some(tls) = &s.tls {
                    match tls.get_ref().as_str() {
                        "none" => {
                            if !is_loopback(&host) {
                                return Err(ctx.err(
                                    tls.span(),
                                    "smtp.tls",
                                    &format!(
                                        "`tls = \"none\"` is accepted only for a loopback relay \
                                         (localhost, 127.0.0.1, ::1), not `{host}`; remove it \
                                         to use STARTTLS"
                                    ),
                                ));
                            }
                            if scheme == "smtps" {
                                return Err(ctx.err(
                                    tls.span(),
                                    "smtp.tls",
                                    "`tls = \"none\"` contradicts an smtps:// url",
                                ));
                            }
                            security = SmtpSecurity::None;
                        }
                        "required" => {}
                        other => {
                            return Err(ctx.err(
                                tls.span(),
                                "smtp.tls",
                                &format!("`{other}` is not a TLS mode; the only accepted value is \"none\" (for a loopback relay)"),
                            ))
                        }
                    }
                }
                let from = s.from.get_ref().clone();
                if !crate::validate_email(&from) {
                    return Err(ctx.err(
                        s.from.span(),
                        "smtp.from",
                        &format!("`{from}` is not an email address"),
                    ));
                }
                let default_port = match security {
                    SmtpSecurity::Implicit => 465,
                    _ => 587,
                };
                Some(Smtp {
                    security,
                    host,
                    port: port.unwrap_or(default_port),
                    from,
                    user: s.user.clone(),
                    password_env: s.password_env.clone(),
                    ca_file: ctx.ca_file(&s.ca_file, "smtp.ca_file", &resolve)?,
                })
            }
        };

        let members = match &raw.organization {
            None => None,
            Some(o) => {
                let mut list = Vec::new();
                for m in &o.members {
                    let addr = m.get_ref().trim().to_lowercase();
                    if !crate::validate_email(&addr) {
                        return Err(ctx.err(
                            m.span(),
                            "organization.members",
                            &format!("`{}` is not an email address", m.get_ref()),
                        ));
                    }
                    list.push(addr);
                }
                Some(list)
            }
        };

        Ok(Config {
            path: path.to_path_buf(),
            database,
            timezone,
            sync_time,
            min_file_age,
            max_rejected_ratio,
            retry,
            ftp,
            smtp,
            members,
        })
    }

    /// The connection named `name`.
    pub fn ftp_conn(&self, name: &str) -> Option<&FtpConn> {
        self.ftp.iter().find(|c| c.name == name)
    }

    /// Whether `email` may receive notifications.
    pub fn is_member(&self, email: &str) -> bool {
        match &self.members {
            None => true,
            Some(list) => list.iter().any(|m| m.eq_ignore_ascii_case(email)),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Parses `HH:MM` (24-hour).
pub fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// Parses a duration such as `2m`, `30m`, `1h 30m`, `90s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("`{s}` is not a duration; write e.g. `90s`, `2m`, `1h 30m`"))
}

struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn err(&self, span: Range<usize>, key: &str, msg: &str) -> anyhow::Error {
        UsageError(format!(
            "{}:{}: `{key}`: {msg}",
            self.path.display(),
            self.line(span)
        ))
        .into()
    }

    /// Resolves a `ca_file` and checks now that it is there, so that a
    /// typo is a configuration error with its line rather than a failed
    /// connection at 2 a.m.
    fn ca_file(
        &self,
        c: &Option<Spanned<String>>,
        key: &str,
        resolve: &dyn Fn(&str) -> PathBuf,
    ) -> Result<Option<PathBuf>> {
        let Some(c) = c else {
            return Ok(None);
        };
        let path = resolve(c.get_ref());
        if !path.is_file() {
            return Err(self.err(
                c.span(),
                key,
                &format!(
                    "`{}` (that is `{}`) is not a file; give the CA certificate (PEM), \
                     relative to this configuration file or absolute",
                    c.get_ref(),
                    path.display()
                ),
            ));
        }
        Ok(Some(path))
    }

    fn duration(&self, d: &Spanned<String>, key: &str) -> Result<Duration> {
        parse_duration(d.get_ref()).map_err(|e| self.err(d.span(), key, &e))
    }

    /// Splits `scheme://host[:port]` and checks the scheme.
    fn url(
        &self,
        u: &Spanned<String>,
        key: &str,
        schemes: &[&str],
    ) -> Result<(String, String, Option<u16>)> {
        let bad = |msg: String| self.err(u.span(), key, &msg);
        let parsed = url::Url::parse(u.get_ref()).map_err(|e| {
            bad(format!(
                "`{}` is not a URL ({e}); write e.g. `{}://host:port`",
                u.get_ref(),
                schemes[0]
            ))
        })?;
        let scheme = parsed.scheme().to_string();
        if !schemes.contains(&scheme.as_str()) {
            return Err(bad(format!(
                "scheme `{scheme}://` is not supported here; use {}",
                schemes
                    .iter()
                    .map(|s| format!("`{s}://`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL: set `user` and `password_env`".into(),
            ));
        }
        if !matches!(parsed.path(), "" | "/") {
            return Err(bad(format!(
                "the URL has a path `{}`; put folders in `root` (ftp) instead",
                parsed.path()
            )));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("the URL names no host".into()))?
            .to_string();
        Ok((scheme, host, parsed.port()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    database: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    sync_time: Option<Spanned<String>>,
    min_file_age: Option<Spanned<String>>,
    max_rejected_ratio: Option<Spanned<f64>>,
    retry: Option<RawRetry>,
    #[serde(default)]
    ftp: Vec<RawFtp>,
    smtp: Option<RawSmtp>,
    organization: Option<RawOrg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<Spanned<i64>>,
    backoff: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFtp {
    name: Spanned<String>,
    url: Spanned<String>,
    root: Option<String>,
    user: Option<String>,
    password_env: Option<String>,
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    url: Spanned<String>,
    from: Spanned<String>,
    user: Option<String>,
    password_env: Option<String>,
    ca_file: Option<Spanned<String>>,
    tls: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    #[serde(default)]
    members: Vec<Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/segsync/segments.toml"))
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.database, PathBuf::from("/etc/segsync/segments.db"));
        assert_eq!(c.timezone, Tz::UTC);
        assert_eq!(c.sync_time, NaiveTime::from_hms_opt(2, 0, 0).unwrap());
        assert_eq!(c.min_file_age, Duration::from_secs(120));
        assert_eq!(c.max_rejected_ratio, 0.05);
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.retry.backoff, Duration::from_secs(1800));
        assert!(c.smtp.is_none() && c.members.is_none() && c.ftp.is_empty());
    }

    #[test]
    fn full() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not checked here").unwrap();
        let c = Config::parse(
            r#"
database = "data/seg.db"
timezone = "Asia/Kolkata"
sync_time = "03:30"
min_file_age = "5m"
retry = { max_attempts = 5, backoff = "1h" }
[[ftp]]
name = "apac"
url = "ftps://ftp.example.com:2121"
root = "/exports"
user = "seg"
password_env = "APAC_FTP_PASSWORD"
ca_file = "ca.pem"
[smtp]
url = "smtp://mail.example.com"
from = "segsync@example.com"
[organization]
members = ["A@example.com"]
"#,
            &dir.path().join("segments.toml"),
        )
        .unwrap();
        assert_eq!(c.database, dir.path().join("data/seg.db"));
        assert_eq!(c.timezone, chrono_tz::Asia::Kolkata);
        let f = &c.ftp[0];
        assert!(f.secure);
        assert_eq!((f.host.as_str(), f.port), ("ftp.example.com", 2121));
        assert_eq!(
            f.ca_file.as_deref(),
            Some(dir.path().join("ca.pem").as_path())
        );
        let s = c.smtp.unwrap();
        assert_eq!((s.security, s.port), (SmtpSecurity::StartTls, 587));
        assert!(c.members.unwrap().contains(&"a@example.com".to_string()));
    }

    #[test]
    fn refusals_name_key_and_line() {
        let e = err("timezone = \"UTC\"\nsync_tme = \"02:00\"\n");
        assert!(e.contains("line 2") && e.contains("sync_tme"), "{e}");
        let e = err("\ntimezone = \"Mars/Olympus\"");
        assert!(
            e.contains("segments.toml:2") && e.contains("timezone"),
            "{e}"
        );
        let e = err("sync_time = \"2am\"");
        assert!(e.contains(":1: `sync_time`"), "{e}");
        let e = err("min_file_age = \"soon\"");
        assert!(e.contains("min_file_age"), "{e}");
        // Wrong TOML types are explained without Rust type names.
        let e = err("max_rejected_ratio = \"5%\"");
        assert!(e.contains("expected a number such as 0.05"), "{e}");
        let e = err("[retry]\nmax_attempts = \"3\"");
        assert!(e.contains("expected a whole number"), "{e}");
        let e = err("min_file_age = 120");
        assert!(e.contains("expected a quoted string"), "{e}");
        let e = err("[[ftp]]\nname = \"a\"\nurl = \"sftp://h\"\n");
        assert!(e.contains(":3: `ftp.url`") && e.contains("ftp://"), "{e}");
        let e = err(
            "[[ftp]]\nname = \"a\"\nurl = \"ftp://h\"\n[[ftp]]\nname = \"a\"\nurl = \"ftp://h\"\n",
        );
        assert!(e.contains(":5:") && e.contains("twice"), "{e}");
        let six: String = (0..6)
            .map(|i| format!("[[ftp]]\nname = \"c{i}\"\nurl = \"ftp://h\"\n"))
            .collect();
        assert!(err(&six).contains("at most 5"));
        let e = err("[smtp]\nurl = \"http://h\"\nfrom = \"a@b.c\"\n");
        assert!(e.contains("smtp.url"), "{e}");
        let e =
            err("[smtp]\nurl = \"smtp://mail.example.com\"\nfrom = \"a@b.c\"\ntls = \"none\"\n");
        assert!(
            e.contains(":4: `smtp.tls`") && e.contains("loopback"),
            "{e}"
        );
        assert!(parse(
            "[smtp]\nurl = \"smtp://127.0.0.1:2525\"\nfrom = \"a@b.c\"\ntls = \"none\"\n"
        )
        .is_ok());
        let e = err("[[ftp]]\nname = \"a\"\nurl = \"ftps://h\"\nca_file = \"nope.pem\"\n");
        assert!(
            e.contains(":4: `ftp.ca_file`") && e.contains("/etc/segsync/nope.pem"),
            "{e}"
        );
        let e = err("[[ftp]]\nname = \"a\"\nurl = \"ftp://u:secret@h\"\n");
        assert!(e.contains("credentials") && !e.contains("secret"), "{e}");
    }
}
