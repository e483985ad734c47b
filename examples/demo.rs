//! The whole segsync job on sample files, in one command:
//!
//! ```sh
//! cargo run --example demo
//! ```
//!
//! It starts a real FTP server inside this process (libunftp, on a random
//! loopback port) over a temporary folder, writes a `segments.toml` beside
//! it, creates an SCD segment (`high_value`, user ids) and a non-SCD one
//! (`churn_risk`, emails), then plays three days: each day the "ETL" drops
//! that day's files from `examples/data/` on the server and cron's
//! `run-due` runs at 02:05 (and 02:40 for retries). On day two the
//! churn file has a bad header: the refresh fails, is retried, fails for
//! good, and the segment keeps its members; day three recovers. An SMTP
//! server inside the process receives the failure, warning and recovery
//! emails, which are printed at the end with `logs`, `show` and
//! `members --as-of`. Every command is the real CLI, run through the
//! library with `--now` pinning the clock.

#[allow(dead_code)]
#[path = "../tests/common/ftpserver.rs"]
mod ftpserver;
#[allow(dead_code)]
#[path = "../tests/common/smtpserver.rs"]
mod smtpserver;

use chrono::{DateTime, TimeZone, Utc};
use clap::Parser;
use std::path::Path;

/// The organisation's zone in the sample configuration.
const ZONE: chrono_tz::Tz = chrono_tz::Asia::Kolkata;

fn main() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let ftp_root = work.path().join("ftp");
    std::fs::create_dir_all(&ftp_root)?;
    let server = ftpserver::FtpServer::start(&ftp_root);
    std::env::set_var(ftpserver::PASSWORD_ENV, ftpserver::PASSWORD);
    let mail = smtpserver::SmtpServer::start(smtpserver::Options::new(smtpserver::Security::Plain));

    let config = work.path().join("segments.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by the demo.\ndatabase = \"segments.db\"\ntimezone = \"Asia/Kolkata\"\n\
             sync_time = \"02:00\"\nmin_file_age = \"2m\"\nmax_rejected_ratio = 0.05\n\n\
             [retry]\nmax_attempts = 2\nbackoff = \"30m\"\n\n\
             [smtp]\nurl = \"smtp://127.0.0.1:{}\"\nfrom = \"segsync@example.com\"\n\
             tls = \"none\"\n\n{}",
            mail.port,
            server.config("analytics", "/exports")
        ),
    )?;
    println!("demo folder: {}", work.path().display());
    println!(
        "FTP server:  {}  (serving {})",
        server.url(),
        ftp_root.display()
    );
    // The commands below are shown without it, for brevity.
    println!(
        "config:      {} (every command below runs with --config pointing at it)\n",
        config.display()
    );
    let cfg = config.to_str().expect("utf-8 path").to_string();

    let created = local(2026, 11, 30, 18, 0);
    #[rustfmt::skip]
    let segments: [&[&str]; 2] = [
        &["create", "high_value", "--type", "scd", "--ftp", "analytics",
          "--path", "high_value", "--frequency", "daily",
          "--recipient", "crm-team@example.com", "--description", "Customers by value tier"],
        &["create", "churn_risk", "--type", "non-scd", "--ftp", "analytics",
          "--path", "churn", "--frequency", "daily",
          "--recipient", "retention@example.com",
          "--description", "Churn risk from the weekly model"],
    ];
    for args in segments {
        segsync(&cfg, created, args);
    }

    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    for day in 1..=3 {
        let date = format!("2026-12-{day:02}");
        println!("\n=== {date}: the ETL drops its files at 01:00, cron runs at 02:05 ===");
        for (segment, folder) in [("high_value", "high_value"), ("churn_risk", "churn")] {
            let name = format!("{segment}__{date}.csv");
            let body = std::fs::read(data.join(&name))?;
            ftpserver::put_file(
                &ftp_root,
                &format!("exports/{folder}/{name}"),
                &body,
                local(2026, 12, day, 1, 0),
            );
        }
        segsync(&cfg, local(2026, 12, day, 2, 5), &["run-due"]);
        if day == 2 {
            println!("\n--- 02:40: the failed slot is retried after the 30m backoff ---");
            segsync(&cfg, local(2026, 12, day, 2, 40), &["run-due"]);
        }
    }

    let end = local(2026, 12, 3, 9, 0);
    println!("\n=== what an analyst sees on the morning of 2026-12-03 ===");
    segsync(&cfg, end, &["logs"]);
    segsync(&cfg, end, &["show", "high_value"]);
    segsync(&cfg, end, &["show", "churn_risk"]);
    segsync(&cfg, end, &["members", "high_value", "--partition", "high"]);
    segsync(
        &cfg,
        end,
        &[
            "members",
            "high_value",
            "--as-of",
            "2026-12-01T12:00:00+05:30",
            "--partition",
            "high",
        ],
    );

    println!("\n=== the emails the recipients received ===");
    for m in mail.messages() {
        println!("\n--- to {} ---", m.to.join(", "));
        println!("Subject: {}\n", m.header("Subject").unwrap_or_default());
        println!("{}", m.body().trim_end());
    }
    drop(server);
    Ok(())
}

/// A moment in the organisation's zone.
fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    ZONE.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("unambiguous demo time")
        .with_timezone(&Utc)
}

/// Runs one segsync command line as the binary would, printing it first.
fn segsync(config: &str, now: DateTime<Utc>, args: &[&str]) {
    let now = now.with_timezone(&ZONE).to_rfc3339();
    // Quoted as a shell needs them, so a printed line can be pasted.
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                a.to_string()
            }
        })
        .collect();
    println!("\n$ segsync --now {now} {}", shown.join(" "));
    let mut argv = vec!["segsync", "--config", config, "--now", &now];
    argv.extend_from_slice(args);
    let cli = segsync::cli::Cli::parse_from(argv);
    if let Err(e) = segsync::run(cli) {
        // A failed refresh is part of the story; print it as the binary would.
        println!(
            "(exit code {}) {}",
            segsync::error::exit_code(&e),
            segsync::output::error_chain(&e)
        );
    }
}
