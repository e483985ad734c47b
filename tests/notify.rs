//! Notifications against a real SMTP server on loopback: what is sent,
//! to whom, over what, and what the execution log records.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::smtpserver::{closed_port, Certs, Options, Security, SmtpServer};
use segsync::app::App;
use segsync::cli::Global;
use segsync::config::Config;
use segsync::notify::{after_execution, check_smtp, Outlook};
use segsync::segment::{AlertState, Frequency, Schedule, Segment, SegmentType, Status};
use segsync::store::{
    finish_execution, insert_execution, insert_rejected_rows, Execution, Outcome, RejectedRow,
    Trigger,
};
use std::sync::{Arc, Mutex, OnceLock};

const NAME: &str = "high_value";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The first slot: 2026-12-01 02:00 in Asia/Kolkata.
fn slot(day: i64) -> DateTime<Utc> {
    at("2026-11-30T20:30:00Z") + Duration::days(day)
}

/// A database and config in a temporary folder, with one daily segment.
struct World {
    dir: tempfile::TempDir,
    app: App,
    segment: Segment,
}

impl World {
    /// `smtp` is the `[smtp]` section (or empty); `recipients` the
    /// segment's.
    fn new(smtp: &str, recipients: &[&str]) -> World {
        capture_logs();
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "database = \"seg.db\"\ntimezone = \"Asia/Kolkata\"\n\
             [[ftp]]\nname = \"apac\"\nurl = \"ftp://127.0.0.1:2121\"\n{smtp}\n"
        );
        let path = dir.path().join("segments.toml");
        std::fs::write(&path, &text).unwrap();
        let config = Config::parse(&text, &path).unwrap();
        let global = Global {
            config: None,
            now: Some(at("2026-12-01T03:00:00Z")),
            json: false,
            verbose: 0,
            quiet: true,
        };
        let mut app = App::with_config(config, &global);
        let created = at("2026-11-29T10:00:00Z");
        let mut segment = Segment {
            id: 0,
            name: NAME.into(),
            description: String::new(),
            seg_type: SegmentType::Scd,
            status: Status::Active,
            schedule: Some(Schedule {
                ftp: "apac".into(),
                path: "exports".into(),
                frequency: Frequency::Daily,
                from: created.date_naive(),
                to: None,
            }),
            draft: Default::default(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            id_type: None,
            partition_column: None,
            schedule_anchor: created,
            created_at: created,
            updated_at: created,
            alert_state: AlertState::Ok,
        };
        segment.id = app.store().unwrap().insert_segment(&segment).unwrap();
        World { dir, app, segment }
    }

    /// Simulates one finished execution of the slot of `day`, then runs
    /// the notification step. Returns the execution id.
    fn run(&mut self, day: i64, attempt: i64, result: Result<usize, &str>, fin: bool) -> i64 {
        let s = slot(day);
        let mut e = Execution {
            segment: NAME.into(),
            segment_id: self.segment.id,
            slot: Some(s),
            trigger: if attempt == 1 {
                Trigger::Schedule
            } else {
                Trigger::Retry
            },
            attempt,
            started_at: s + Duration::minutes(30 * (attempt - 1)),
            outcome: Outcome::Running,
            ..Default::default()
        };
        let store = self.app.store().unwrap();
        e.id = insert_execution(store.conn(), &e).unwrap();
        e.finished_at = Some(e.started_at + Duration::seconds(4));
        e.file = Some(format!("{NAME}__{}.csv", 20261201 + day));
        let rejected: Vec<RejectedRow> = match result {
            Ok(n) => (0..n)
                .map(|i| RejectedRow {
                    line: 3 + 2 * i as u64,
                    field: Some("email".into()),
                    reason: format!("`user{i}@` is not an email address"),
                    content: Some(format!("user{i}@,high")),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        match result {
            Ok(n) => {
                e.outcome = Outcome::Success;
                e.rows_read = Some(100);
                e.rows_loaded = Some(100 - n as i64);
                e.rows_rejected = Some(n as i64);
                e.added = Some(4);
            }
            Err(msg) => {
                e.outcome = Outcome::Failed;
                e.error = Some(msg.into());
            }
        }
        finish_execution(store.conn(), &e).unwrap();
        insert_rejected_rows(store.conn(), e.id, &rejected).unwrap();
        let outlook = Outlook {
            final_failure: fin,
            next_attempt: (result.is_err() && !fin).then(|| e.started_at + Duration::minutes(30)),
            next_slot: Some(slot(day + 1)),
        };
        after_execution(&mut self.app, &self.segment, &e, &outlook).unwrap();
        e.id
    }

    fn notified(&mut self, id: i64) -> Option<String> {
        self.app
            .store()
            .unwrap()
            .execution(id)
            .unwrap()
            .unwrap()
            .notified
    }

    fn execution(&mut self, id: i64) -> Execution {
        self.app.store().unwrap().execution(id).unwrap().unwrap()
    }

    fn alert_state(&mut self) -> AlertState {
        let id = self.segment.id;
        self.app
            .store()
            .unwrap()
            .segment_by_id(id)
            .unwrap()
            .alert_state
    }
}

fn plain_relay(port: u16) -> String {
    format!(
        "[smtp]\nurl = \"smtp://127.0.0.1:{port}\"\nfrom = \"segsync@example.com\"\ntls = \"none\"\n"
    )
}

/// `[smtp]` for a TLS server with our CA and a login whose password is in
/// the environment variable `var`.
fn tls_smtp(scheme: &str, port: u16, certs: &Certs, var: &str) -> String {
    format!(
        "[smtp]\nurl = \"{scheme}://127.0.0.1:{port}\"\nfrom = \"segsync@example.com\"\n\
         user = \"robot\"\npassword_env = \"{var}\"\nca_file = \"{}\"\n",
        certs.ca.display()
    )
}

fn with_login(security: Security, password: &str) -> Options {
    let mut o = Options::new(security);
    o.login = Some(("robot".into(), password.into()));
    o
}

#[test]
fn plain_relay_gets_the_failure_email_with_all_the_facts() {
    let server = SmtpServer::start(Options::new(Security::Plain));
    let mut w = World::new(
        &plain_relay(server.port),
        &["ana@example.com", "bo@example.com"],
    );
    let err = "failed to download `high_value__20261201.csv` from ftp `apac`: timed out after 30s";

    let first = w.run(0, 1, Err(err), false);
    let second = w.run(0, 2, Err(err), false);
    assert!(
        server.messages().is_empty(),
        "no email while a retry follows"
    );
    assert_eq!(w.notified(first), None);
    assert_eq!(w.notified(second), None);
    let last = w.run(0, 3, Err(err), true);

    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.to, vec!["ana@example.com", "bo@example.com"]);
    assert_eq!(m.from, "segsync@example.com");
    assert!(!m.tls);
    let id = m.header("Message-ID").expect("a Message-ID header");
    assert!(
        id.starts_with('<') && id.ends_with('>') && id.contains('@'),
        "{id}"
    );
    assert_eq!(
        m.header("Subject").unwrap(),
        "[segsync] high_value: refresh failed for the Tue 2026-12-01 02:00 IST slot"
    );
    let body = m.body();
    for want in [
        "Segment:  high_value",
        "Slot:     Tue 2026-12-01 02:00 IST",
        "Attempt:  3 of 3",
        "File:     high_value__20261201.csv",
        &format!("Error:    {err}"),
        "Next slot: Wed 2026-12-02 02:00 IST",
        "segsync logs high_value",
    ] {
        assert!(body.contains(want), "missing {want:?} in:\n{body}");
    }
    let note = w.notified(last).unwrap();
    assert!(
        note.starts_with(
            "failure email sent to ana@example.com, bo@example.com at 2026-12-01T03:00"
        ),
        "{note}"
    );
    assert_eq!(w.alert_state(), AlertState::Failing);
}

#[test]
fn failing_recovering_and_warning_sends_one_email_per_change() {
    let server = SmtpServer::start(Options::new(Security::Plain));
    let mut w = World::new(&plain_relay(server.port), &["ana@example.com"]);

    // Day 0: three failed attempts. Day 1: two failures, then the next slot
    // comes (final). Day 2: fails once, then succeeds. Day 3: clean load.
    // Day 4: load with rejected rows. Day 5: clean load.
    w.run(0, 1, Err("boom"), false);
    w.run(0, 2, Err("boom"), false);
    let fail = w.run(0, 3, Err("boom"), true);
    w.run(1, 1, Err("boom"), false);
    let quiet = w.run(1, 2, Err("boom"), true);
    w.run(2, 1, Err("boom"), false);
    let recovered = w.run(2, 2, Ok(0), false);
    let clean = w.run(3, 1, Ok(0), false);
    let warned = w.run(4, 1, Ok(3), false);
    w.run(5, 1, Ok(0), false);

    let subjects: Vec<String> = server
        .messages()
        .iter()
        .map(|m| m.header("Subject").unwrap())
        .collect();
    assert_eq!(
        subjects,
        vec![
            "[segsync] high_value: refresh failed for the Tue 2026-12-01 02:00 IST slot",
            "[segsync] high_value: refresh succeeded again",
            "[segsync] high_value: refreshed, 3 rows rejected",
        ]
    );
    assert!(w.notified(fail).unwrap().starts_with("failure email sent"));
    assert_eq!(
        w.notified(quiet),
        None,
        "a segment that keeps failing is not re-announced"
    );
    assert!(w
        .notified(recovered)
        .unwrap()
        .starts_with("recovery email sent"));
    assert_eq!(w.notified(clean), None);
    assert!(w
        .notified(warned)
        .unwrap()
        .starts_with("warning email sent"));

    let warning = server.messages()[2].body();
    assert!(
        warning.contains("Rows:     100 read, 97 loaded, 3 rejected"),
        "{warning}"
    );
    assert!(warning.contains("  line 3: email: `user0@` is not an email address  [user0@,high]"));
    assert!(warning.contains("  line 7: email: `user2@`"), "{warning}");
    assert_eq!(w.alert_state(), AlertState::Ok);
}

#[test]
fn a_second_call_or_another_process_never_sends_twice() {
    let server = SmtpServer::start(Options::new(Security::Plain));
    let mut w = World::new(&plain_relay(server.port), &["ana@example.com"]);
    let id = w.run(0, 1, Err("boom"), true);
    assert_eq!(server.messages().len(), 1);

    // The same execution handled again, as a process taking over a crashed
    // run-due would: through its own connection to the same database.
    let exec = w.execution(id);
    let outlook = Outlook {
        final_failure: true,
        ..Default::default()
    };
    let mut other = App::with_config(
        w.app.config.clone(),
        &Global {
            config: None,
            now: Some(at("2026-12-01T03:10:00Z")),
            json: false,
            verbose: 0,
            quiet: true,
        },
    );
    after_execution(&mut other, &w.segment, &exec, &outlook).unwrap();
    after_execution(&mut w.app, &w.segment, &exec, &outlook).unwrap();
    assert_eq!(server.messages().len(), 1);
    assert!(w.notified(id).unwrap().starts_with("failure email sent"));
    assert!(w.dir.path().join("seg.db").exists());
}

#[test]
fn starttls_with_a_private_ca_and_a_password_from_the_environment() {
    let certs = Certs::generate();
    let server = SmtpServer::start(with_login(Security::starttls(&certs), "s3cret-starttls"));
    std::env::set_var("NOTIFY_TEST_PW_STARTTLS", "s3cret-starttls");
    let smtp = tls_smtp("smtp", server.port, &certs, "NOTIFY_TEST_PW_STARTTLS");
    let mut w = World::new(&smtp, &["ana@example.com"]);

    let id = w.run(0, 1, Ok(2), false);
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1, "notified: {:?}", w.notified(id));
    assert!(msgs[0].tls, "the message went over TLS");
    assert_eq!(msgs[0].user.as_deref(), Some("robot"));
    let auth = server.auth_attempts();
    assert_eq!(auth.len(), 1);
    assert!(auth[0].tls, "credentials only after STARTTLS");
    assert_eq!(auth[0].password, "s3cret-starttls");
    assert!(w
        .notified(id)
        .unwrap()
        .starts_with("warning email sent to ana@example.com"));
}

#[test]
fn smtps_implicit_tls_delivers() {
    let certs = Certs::generate();
    let server = SmtpServer::start(with_login(Security::implicit(&certs), "s3cret-smtps"));
    std::env::set_var("NOTIFY_TEST_PW_SMTPS", "s3cret-smtps");
    let mut w = World::new(
        &tls_smtp("smtps", server.port, &certs, "NOTIFY_TEST_PW_SMTPS"),
        &["ana@example.com"],
    );
    let id = w.run(0, 1, Err("boom"), true);
    assert_eq!(server.messages().len(), 1, "notified: {:?}", w.notified(id));
    assert!(server.messages()[0].tls);
}

#[test]
fn a_server_without_starttls_is_refused_not_used_in_plain_text() {
    let server = SmtpServer::start(with_login(Security::Plain, "s3cret-nostarttls"));
    std::env::set_var("NOTIFY_TEST_PW_NOSTARTTLS", "s3cret-nostarttls");
    let certs = Certs::generate();
    let mut w = World::new(
        &tls_smtp("smtp", server.port, &certs, "NOTIFY_TEST_PW_NOSTARTTLS"),
        &["ana@example.com"],
    );
    let id = w.run(0, 1, Err("boom"), true);
    assert!(server.messages().is_empty());
    assert!(
        server.auth_attempts().is_empty(),
        "no credentials over plain text"
    );
    let note = w.notified(id).unwrap();
    assert!(
        note.starts_with("failure email to ana@example.com not sent at"),
        "{note}"
    );
    assert!(note.contains("STARTTLS is not supported"), "{note}");
    assert!(!note.contains("s3cret"), "{note}");
    // The log row is intact and the state still moved: no email per tick.
    let e = w.execution(id);
    assert_eq!(
        (e.outcome, e.error.as_deref()),
        (Outcome::Failed, Some("boom"))
    );
    assert_eq!(w.alert_state(), AlertState::Failing);
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let certs = Certs::generate();
    let server = SmtpServer::start(Options::new(Security::starttls(&certs)));
    let smtp = format!(
        "[smtp]\nurl = \"smtp://127.0.0.1:{}\"\nfrom = \"segsync@example.com\"\n",
        server.port
    );
    let mut w = World::new(&smtp, &["ana@example.com"]);
    let id = w.run(0, 1, Err("boom"), true);
    assert!(server.messages().is_empty());
    let note = w.notified(id).unwrap();
    assert!(
        note.contains("not sent") && note.contains("certificate"),
        "{note}"
    );
}

#[test]
fn refused_recipients_or_message_are_recorded() {
    for (reject_rcpt, code) in [(true, "550"), (false, "554")] {
        let mut opts = Options::new(Security::Plain);
        opts.reject_rcpt = reject_rcpt;
        opts.reject_data = !reject_rcpt;
        let server = SmtpServer::start(opts);
        let mut w = World::new(&plain_relay(server.port), &["ana@example.com"]);
        let id = w.run(0, 1, Err("boom"), true);
        assert!(server.messages().is_empty());
        let note = w.notified(id).unwrap();
        assert!(note.contains("not sent") && note.contains(code), "{note}");
        assert_eq!(w.execution(id).outcome, Outcome::Failed);
    }
}

#[test]
fn a_server_that_is_down_is_recorded() {
    let mut w = World::new(&plain_relay(closed_port()), &["ana@example.com"]);
    let id = w.run(0, 1, Err("boom"), true);
    let note = w.notified(id).unwrap();
    assert!(
        note.starts_with("failure email to ana@example.com not sent"),
        "{note}"
    );
    assert!(note.to_lowercase().contains("refused"), "{note}");
}

#[test]
fn no_smtp_section_and_no_recipients_are_recorded() {
    let mut w = World::new("", &["ana@example.com"]);
    let id = w.run(0, 1, Err("boom"), true);
    assert_eq!(
        w.notified(id).unwrap(),
        "failure email not sent: no [smtp] section in segments.toml"
    );
    assert_eq!(w.alert_state(), AlertState::Failing);

    let server = SmtpServer::start(Options::new(Security::Plain));
    let mut w = World::new(&plain_relay(server.port), &[]);
    let id = w.run(0, 1, Err("boom"), true);
    assert_eq!(
        w.notified(id).unwrap(),
        "failure email not sent: no recipients"
    );
    assert_eq!(server.connections(), 0);
}

#[test]
fn recipients_outside_the_organization_are_skipped() {
    let server = SmtpServer::start(Options::new(Security::Plain));
    let smtp = format!(
        "{}[organization]\nmembers = [\"ana@example.com\"]\n",
        plain_relay(server.port)
    );
    let mut w = World::new(&smtp, &["ana@example.com", "eve@elsewhere.com"]);
    let id = w.run(0, 1, Err("boom"), true);
    assert_eq!(server.messages()[0].to, vec!["ana@example.com"]);
    let note = w.notified(id).unwrap();
    assert!(
        note.ends_with("; skipped eve@elsewhere.com (not in [organization] members)"),
        "{note}"
    );
}

#[test]
fn check_connects_without_sending_and_sends_a_test_on_request() {
    let certs = Certs::generate();
    let server = SmtpServer::start(with_login(Security::starttls(&certs), "s3cret-check"));
    std::env::set_var("NOTIFY_TEST_PW_CHECK", "s3cret-check");
    let w = World::new(
        &tls_smtp("smtp", server.port, &certs, "NOTIFY_TEST_PW_CHECK"),
        &[],
    );

    let out = check_smtp(&w.app, None).unwrap();
    assert!(
        out.contains("connected to smtp://127.0.0.1") && out.contains("robot"),
        "{out}"
    );
    assert!(server.messages().is_empty());
    assert_eq!(server.auth_attempts().len(), 1, "check authenticates");

    let out = check_smtp(&w.app, Some("ops@example.com")).unwrap();
    assert!(out.contains("test email sent to ops@example.com"), "{out}");
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].to, vec!["ops@example.com"]);
    assert_eq!(msgs[0].header("Subject").unwrap(), "[segsync] test email");

    let e = check_smtp(&w.app, Some("not-an-address")).unwrap_err();
    assert!(format!("{e:#}").contains("not-an-address"));
}

#[test]
fn check_reports_a_wrong_password_without_showing_it() {
    let certs = Certs::generate();
    let server = SmtpServer::start(with_login(Security::starttls(&certs), "the-right-one"));
    std::env::set_var("NOTIFY_TEST_PW_WRONG", "wrong-pw-9f3k");
    let w = World::new(
        &tls_smtp("smtp", server.port, &certs, "NOTIFY_TEST_PW_WRONG"),
        &[],
    );
    let e = format!("{:#}", check_smtp(&w.app, None).unwrap_err());
    assert!(e.contains("535"), "{e}");
    assert!(!e.contains("wrong-pw-9f3k"), "{e}");

    let w = World::new("", &[]);
    assert!(check_smtp(&w.app, None)
        .unwrap()
        .contains("no [smtp] section"));
}

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Capture> = OnceLock::new();

/// Installs, once for this test binary and before any test logs, a global
/// subscriber at `trace` with segsync's own filter (the caps included),
/// writing into [`LOGS`]. Global rather than per test: tracing caches
/// which call sites are enabled across threads, so a thread-scoped
/// subscriber misses events when tests run in parallel.
fn capture_logs() -> Capture {
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let sink = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter(segsync::logging::filter("trace"))
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .init();
        capture
    })
    .clone()
}

#[test]
fn no_credential_in_logs_at_trace_level() {
    let certs = Certs::generate();
    let password = "pw-that-must-never-show-7Qx";
    let server = SmtpServer::start(with_login(Security::starttls(&certs), password));
    std::env::set_var("NOTIFY_TEST_PW_LOGS", password);
    let mut w = World::new(
        &tls_smtp("smtp", server.port, &certs, "NOTIFY_TEST_PW_LOGS"),
        &["ana@example.com"],
    );

    check_smtp(&w.app, Some("ops@example.com")).unwrap();
    w.run(0, 1, Err("boom"), true);

    assert_eq!(server.messages().len(), 2, "both emails went through");
    assert!(server
        .auth_attempts()
        .iter()
        .all(|a| a.password == password));
    let logged = String::from_utf8(capture_logs().0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("high_value: sent the failure email to ana@example.com"),
        "the capture works: {logged}"
    );
    // Every test of this binary logs here: none of their passwords shows,
    // nor the SMTP dialogue that would carry them in base64.
    for secret in [password, "s3cret", "wrong-pw-9f3k", "the-right-one"] {
        assert!(!logged.contains(secret), "{secret} in:\n{logged}");
    }
    assert!(!logged.contains("AUTH"), "{logged}");
}

#[test]
fn a_loopback_relay_marked_tls_none_may_take_a_login_in_plain_text() {
    let server = SmtpServer::start(with_login(Security::Plain, "s3cret-relay"));
    std::env::set_var("NOTIFY_TEST_PW_RELAY", "s3cret-relay");
    let smtp = format!(
        "{}user = \"robot\"\npassword_env = \"NOTIFY_TEST_PW_RELAY\"\n",
        plain_relay(server.port)
    );
    let mut w = World::new(&smtp, &["ana@example.com"]);
    let id = w.run(0, 1, Err("boom"), true);
    assert_eq!(server.messages().len(), 1, "{:?}", w.notified(id));
    assert_eq!(server.messages()[0].user.as_deref(), Some("robot"));
}

#[test]
fn an_interrupted_send_is_not_repeated() {
    let server = SmtpServer::start(Options::new(Security::Plain));
    let mut w = World::new(&plain_relay(server.port), &["ana@example.com"]);
    // A process wrote its note and died before the send finished.
    let id = w.run(0, 1, Err("boom"), false);
    let note = "sending failure email to ana@example.com since 2026-12-01T03:00:00Z";
    w.app.store().unwrap().set_notified(id, note).unwrap();
    let exec = w.execution(id);
    let outlook = Outlook {
        final_failure: true,
        ..Default::default()
    };
    after_execution(&mut w.app, &w.segment, &exec, &outlook).unwrap();
    assert!(server.messages().is_empty());
    assert_eq!(w.notified(id).as_deref(), Some(note));
}
