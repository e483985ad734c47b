//! `segsync check`: tries every configured connection and reports each on
//! one line (or as a JSON array with `--json`).
//!
//! Exit code: 0 when every connection works, 1 when any failed (a runtime
//! failure, like a failed refresh), 2 only for a configuration that cannot
//! be read at all. A failed connection never stops the others from being
//! tried. Messages name the connection and its URL, never a password.

use crate::app::App;
use crate::cli::CheckArgs;
use crate::output::{paint, Color};
use anyhow::Result;
use serde::Serialize;

/// The result of trying one connection.
#[derive(Debug, Serialize)]
struct Outcome {
    /// `ftp` or `smtp`.
    kind: &'static str,
    name: String,
    url: String,
    ok: bool,
    /// What worked, when `ok`.
    detail: Option<String>,
    /// What failed and what to fix, when not `ok`.
    error: Option<String>,
}

impl Outcome {
    fn from_result(kind: &'static str, name: &str, url: String, r: Result<String>) -> Outcome {
        let (ok, detail, error) = match r {
            Ok(d) => (true, Some(d), None),
            Err(e) => (false, None, Some(crate::output::error_chain(&e))),
        };
        Outcome {
            kind,
            name: name.to_string(),
            url,
            ok,
            detail,
            error,
        }
    }
}

pub fn run(app: &mut App, args: CheckArgs) -> Result<()> {
    if args.send_test.is_some() && app.config.smtp.is_none() {
        crate::usage!(
            "--send-test needs an [smtp] section in `{}`; add one (see the README) or drop \
             --send-test",
            app.config.path.display()
        );
    }
    let mut outcomes = check_ftp(app);
    outcomes.extend(check_smtp(app, &args));

    if app.json {
        crate::output::print_json(&outcomes)?;
    } else if outcomes.is_empty() {
        crate::outln!(
            "nothing to check: `{}` configures no [[ftp]] connection and no [smtp]",
            app.config.path.display()
        );
    } else {
        for o in &outcomes {
            print_line(o, app.color);
        }
        // Say so rather than stay silent: without [smtp] failures reach no one.
        if app.config.smtp.is_none() && args.send_test.is_none() {
            crate::outln!(
                "{} smtp: `{}` has no [smtp] section: no email is sent, failures are only in \
                 `segsync logs`",
                paint("--  ", Color::Dim, app.color),
                app.config.path.display()
            );
        }
    }

    let failed = outcomes.iter().filter(|o| !o.ok).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} connection{} failed; see the lines above",
            outcomes.len(),
            if outcomes.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn print_line(o: &Outcome, color: bool) {
    let label = format!("{} `{}` ({})", o.kind, o.name, o.url);
    match (&o.detail, &o.error) {
        (Some(d), _) if o.ok => {
            crate::outln!("{} {label}: {d}", paint("ok  ", Color::Green, color))
        }
        (_, Some(e)) => crate::outln!("{} {e}", paint("FAIL", Color::Red, color)),
        _ => crate::outln!("{} {label}", paint("FAIL", Color::Red, color)),
    }
}

// ---------------------------------------------------------------------------
// FTP: one outcome per [[ftp]] connection, in configuration order.

fn check_ftp(app: &App) -> Vec<Outcome> {
    let timeouts = crate::ftp::Timeouts::default();
    app.config
        .ftp
        .iter()
        .map(|conn| {
            tracing::debug!("checking ftp `{}` ({})", conn.name, conn.url());
            let r = crate::ftp::check(conn, &timeouts);
            Outcome::from_result("ftp", &conn.name, conn.url(), r)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// SMTP: one outcome when [smtp] is configured (EHLO, TLS, login; with
// --send-test also a test email).

fn check_smtp(app: &App, args: &CheckArgs) -> Vec<Outcome> {
    let Some(smtp) = &app.config.smtp else {
        return Vec::new();
    };
    let scheme = match smtp.security {
        crate::config::SmtpSecurity::Implicit => "smtps",
        _ => "smtp",
    };
    let url = format!("{scheme}://{}:{}", smtp.host, smtp.port);
    tracing::debug!("checking smtp ({url})");
    let r = crate::notify::check_smtp(app, args.send_test.as_deref());
    vec![Outcome::from_result("smtp", "smtp", url, r)]
}
