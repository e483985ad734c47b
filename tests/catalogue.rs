//! The analyst commands against the real binary: create, drafts, edit,
//! deactivate, list, show, logs, and every refusal.

mod common;

use common::Sandbox;

const CONFIG: &str = r#"
timezone = "Europe/Paris"
sync_time = "02:00"
[[ftp]]
name = "apac"
url = "ftp://127.0.0.1:2121"
root = "/exports"
[[ftp]]
name = "emea"
url = "ftps://127.0.0.1:2990"
[organization]
members = ["crm@example.com", "ops@example.com"]
"#;

const NOW: &str = "2026-12-03T10:00:00Z";

fn sandbox() -> Sandbox {
    Sandbox::new(CONFIG)
}

/// Creates a weekly SCD segment on `apac`, folder drops/hv, and returns
/// what the command printed.
fn create_weekly(sb: &Sandbox, name: &str) -> common::Run {
    sb.run_at(
        NOW,
        &[
            "create",
            name,
            "--type",
            "scd",
            "--ftp",
            "apac",
            "--path",
            "drops/hv",
            "--frequency",
            "weekly",
            "--recipient",
            "crm@example.com",
        ],
    )
    .expect(0)
}

fn show(sb: &Sandbox, name: &str) -> serde_json::Value {
    sb.run_at(NOW, &["show", name, "--json"]).expect(0).json()
}

#[test]
fn create_then_show_reports_every_setting() {
    let sb = sandbox();
    // Created on Thursday 2026-12-03: a weekly segment first runs Monday.
    let r = create_weekly(&sb, "high_value");
    assert!(
        r.stdout.contains("first slot Mon 2026-12-07 02:00 +01:00"),
        "{}",
        r.stdout
    );
    let v = show(&sb, "high_value");
    assert_eq!(v["name"], "high_value");
    assert_eq!(v["type"], "scd");
    assert_eq!(v["method"], "upload");
    assert_eq!(v["upload_type"], "scheduled");
    assert_eq!(v["status"], "inprogress");
    assert_eq!(v["ftp"], "apac");
    assert_eq!(v["path"], "drops/hv");
    assert_eq!(v["frequency"], "weekly");
    assert_eq!(v["from"], "2026-12-03");
    assert_eq!(v["to"], serde_json::Value::Null);
    assert_eq!(v["recipients"], serde_json::json!(["crm@example.com"]));
    assert_eq!(v["members"], 0);
    assert_eq!(v["last_execution"], serde_json::Value::Null);
    assert!(v["partitions"].as_array().unwrap().is_empty());

    let text = sb.run_at(NOW, &["show", "high_value"]).expect(0).stdout;
    assert!(text.contains("weekly at 02:00 Europe/Paris"), "{text}");
    assert!(text.contains("crm@example.com"), "{text}");
}

#[test]
fn segment_without_upload_options_is_manual() {
    let sb = sandbox();
    let out = sb
        .run_at(NOW, &["create", "vip", "--type", "non-scd"])
        .expect(0)
        .stdout;
    assert!(out.contains("refresh vip --file"), "{out}");
    let v = show(&sb, "vip");
    assert_eq!(v["upload_type"], "manual");
    assert_eq!(v["type"], "non-scd");
    assert_eq!(v["next_slots"], serde_json::json!([]));
}

#[test]
fn refusals_exit_2_and_write_nothing() {
    let sb = sandbox();
    create_weekly(&sb, "taken");
    let cases: &[(&[&str], &str)] = &[
        (&["create", "bad__name", "--type", "scd"], "`__`"),
        (&["create", "bad name", "--type", "scd"], "letters, digits"),
        (&["create", "taken", "--type", "scd"], "already exists"),
        (
            &[
                "create",
                "nopath",
                "--type",
                "scd",
                "--ftp",
                "apac",
                "--frequency",
                "daily",
                "--path",
                "../secrets",
            ],
            "`..`",
        ),
        (
            &[
                "create",
                "nopath2",
                "--type",
                "scd",
                "--ftp",
                "apac",
                "--frequency",
                "daily",
                "--path",
                "a/../../b",
            ],
            "`..`",
        ),
        (
            &[
                "create",
                "noconn",
                "--type",
                "scd",
                "--ftp",
                "mars",
                "--frequency",
                "daily",
            ],
            "unknown connection `mars`",
        ),
        (
            &[
                "create",
                "window",
                "--type",
                "scd",
                "--ftp",
                "apac",
                "--frequency",
                "daily",
                "--from",
                "2026-12-10",
                "--to",
                "2026-12-01",
            ],
            "before it starts",
        ),
        (
            &[
                "create",
                "outsider",
                "--type",
                "scd",
                "--recipient",
                "eve@evil.test",
            ],
            "not a member of the organisation",
        ),
        (&["create", "notype"], "--type is required"),
        (
            &["create", "halfsched", "--type", "scd", "--ftp", "apac"],
            "--frequency",
        ),
        (
            &[
                "create",
                "badfreq",
                "--type",
                "scd",
                "--ftp",
                "apac",
                "--frequency",
                "yearly",
            ],
            "daily, weekly, monthly",
        ),
        (
            &[
                "create",
                "baddate",
                "--type",
                "scd",
                "--ftp",
                "apac",
                "--frequency",
                "daily",
                "--from",
                "03/12/2026",
            ],
            "YYYY-MM-DD",
        ),
        (
            &["edit", "ghost", "--description", "x"],
            "no segment named `ghost`",
        ),
        (&["edit", "taken"], "nothing to change"),
    ];
    for (args, needle) in cases {
        let r = sb.run_at(NOW, args).expect(2);
        assert!(
            r.stderr.contains(needle),
            "{args:?}: expected `{needle}` in {}",
            r.stderr
        );
    }
    let list = sb.run_at(NOW, &["list", "--json"]).expect(0).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["taken"]);
}

#[test]
fn drafts_are_saved_partial_and_completed_by_create() {
    let sb = sandbox();
    let r = sb
        .run_at(
            NOW,
            &[
                "create",
                "later",
                "--draft",
                "--ftp",
                "emea",
                "--description",
                "wip",
            ],
        )
        .expect(0);
    // The hint names this draft, so it can be copied as it is.
    assert!(
        r.stdout.contains("`segsync create later --type"),
        "{}",
        r.stdout
    );
    let v = show(&sb, "later");
    assert_eq!(v["status"], "draft");
    assert_eq!(v["type"], serde_json::Value::Null);
    assert_eq!(v["ftp"], "emea");
    assert_eq!(v["next_slots"], serde_json::json!([]));

    // Completing still checks what is missing.
    let r = sb
        .run_at(NOW, &["create", "later", "--type", "scd"])
        .expect(2);
    assert!(r.stderr.contains("--frequency"), "{}", r.stderr);
    assert_eq!(show(&sb, "later")["status"], "draft");

    // A draft cannot be edited or deactivated, only completed.
    assert!(sb
        .run_at(NOW, &["edit", "later", "--description", "x"])
        .expect(2)
        .stderr
        .contains("draft"));
    sb.run_at(NOW, &["deactivate", "later"]).expect(2);

    sb.run_at(
        NOW,
        &["create", "later", "--type", "scd", "--frequency", "daily"],
    )
    .expect(0);
    let v = show(&sb, "later");
    assert_eq!(v["status"], "inprogress");
    assert_eq!(v["ftp"], "emea");
    assert_eq!(v["frequency"], "daily");
    assert_eq!(v["description"], "wip");
}

#[test]
fn edit_upload_settings_and_reactivate() {
    let sb = sandbox();
    create_weekly(&sb, "hv");
    let out = sb
        .run_at(NOW, &["edit", "hv", "--description", "high value"])
        .expect(0)
        .stdout;
    assert!(!out.contains("upload settings changed"), "{out}");
    let out = sb
        .run_at(
            NOW,
            &["edit", "hv", "--frequency", "daily", "--to", "2027-01-31"],
        )
        .expect(0)
        .stdout;
    assert!(out.contains("upload settings changed"), "{out}");
    let v = show(&sb, "hv");
    assert_eq!(v["frequency"], "daily");
    assert_eq!(v["to"], "2027-01-31");
    assert_eq!(v["description"], "high value");

    sb.run_at(
        NOW,
        &["edit", "hv", "--no-end", "--recipient", "ops@example.com"],
    )
    .expect(0);
    let v = show(&sb, "hv");
    assert_eq!(v["to"], serde_json::Value::Null);
    assert_eq!(
        v["recipients"],
        serde_json::json!(["crm@example.com", "ops@example.com"])
    );
    sb.run_at(
        NOW,
        &[
            "edit",
            "hv",
            "--replace-recipients",
            "--recipient",
            "ops@example.com",
        ],
    )
    .expect(0);
    assert_eq!(
        show(&sb, "hv")["recipients"],
        serde_json::json!(["ops@example.com"])
    );
    // A bare --replace-recipients clears them, and says so.
    let r = sb
        .run_at(NOW, &["edit", "hv", "--replace-recipients"])
        .expect(0);
    assert!(
        r.stdout.contains("failures are not emailed"),
        "{}",
        r.stdout
    );
    assert_eq!(show(&sb, "hv")["recipients"], serde_json::json!([]));

    // A path escaping the root is refused on edit too, and nothing changes.
    sb.run_at(NOW, &["edit", "hv", "--path", "/../../etc"])
        .expect(2);
    assert_eq!(show(&sb, "hv")["path"], "drops/hv");

    sb.run_at(NOW, &["deactivate", "hv"]).expect(0);
    assert_eq!(show(&sb, "hv")["status"], "inactive");
    assert!(sb
        .run_at(NOW, &["deactivate", "hv"])
        .expect(0)
        .stdout
        .contains("already inactive"));
    // With --json, like create and edit: the segment object, even when
    // it was already inactive.
    let v = sb
        .run_at(NOW, &["deactivate", "hv", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["name"], "hv");
    assert_eq!(v["status"], "inactive");
    sb.run_at(NOW, &["edit", "hv", "--activate"]).expect(0);
    assert_eq!(show(&sb, "hv")["status"], "inprogress");

    sb.run_at(NOW, &["edit", "hv", "--manual"]).expect(0);
    let v = show(&sb, "hv");
    assert_eq!(v["upload_type"], "manual");
    assert_eq!(v["ftp"], serde_json::Value::Null);
}

#[test]
fn type_change_allowed_only_without_data() {
    let sb = sandbox();
    create_weekly(&sb, "hv");
    sb.run_at(NOW, &["edit", "hv", "--type", "non-scd"])
        .expect(0);
    assert_eq!(show(&sb, "hv")["type"], "non-scd");

    // Give it data directly in the database, as a load would.
    let conn = rusqlite::Connection::open(sb.path().join("segments.db")).unwrap();
    conn.execute(
        "INSERT INTO member (segment_id, key, partition_id, since)
         SELECT id, 42, 1, 0 FROM segment WHERE name = 'hv'",
        [],
    )
    .unwrap();
    drop(conn);
    let r = sb.run_at(NOW, &["edit", "hv", "--type", "scd"]).expect(2);
    assert!(r.stderr.contains("cannot change"), "{}", r.stderr);
    assert_eq!(show(&sb, "hv")["type"], "non-scd");
}

#[test]
fn list_filters() {
    let sb = sandbox();
    create_weekly(&sb, "hv");
    sb.run_at(
        NOW,
        &[
            "create",
            "vip",
            "--type",
            "non-scd",
            "--description",
            "VIP customers",
        ],
    )
    .expect(0);
    sb.run_at(NOW, &["create", "wip", "--draft"]).expect(0);
    sb.run_at(NOW, &["create", "old", "--type", "scd"])
        .expect(0);
    sb.run_at(NOW, &["deactivate", "old"]).expect(0);

    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["list", "--json"];
        all.extend_from_slice(args);
        sb.run_at(NOW, &all)
            .expect(0)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&[]), ["hv", "old", "vip", "wip"]);
    assert_eq!(names(&["--status", "inactive"]), ["old"]);
    assert_eq!(names(&["--status", "draft"]), ["wip"]);
    assert_eq!(names(&["--type", "non-scd"]), ["vip"]);
    assert_eq!(names(&["--method", "scheduled"]), ["hv"]);
    assert_eq!(
        names(&["--method", "manual", "--status", "inprogress"]),
        ["vip"]
    );
    assert_eq!(names(&["--search", "customers"]), ["vip"]);
    assert_eq!(names(&["--search", "H"]), ["hv"]);
    sb.run_at(NOW, &["list", "--status", "done"]).expect(2);

    let table = sb.run_at(NOW, &["list"]).expect(0).stdout;
    assert!(table.contains("NAME") && table.contains("vip") && table.contains("VIP customers"));
    assert!(
        !table.contains('\x1b'),
        "no colour when NO_COLOR is set or not a terminal"
    );
}

#[test]
fn logs_are_empty_and_json_is_an_array() {
    let sb = sandbox();
    create_weekly(&sb, "hv");
    assert_eq!(
        sb.run_at(NOW, &["logs", "--json"]).expect(0).json(),
        serde_json::json!([])
    );
    assert!(sb
        .run_at(NOW, &["logs", "hv"])
        .expect(0)
        .stdout
        .contains("no executions"));
    sb.run_at(NOW, &["logs", "ghost"]).expect(2);
    sb.run_at(NOW, &["logs", "--since", "yesterday"]).expect(2);
}

#[test]
fn config_is_found_by_option_env_or_default() {
    let sb = sandbox();
    std::fs::create_dir(sb.path().join("elsewhere")).unwrap();
    let cfg = sb.path().join("segments.toml");
    let run_in = |envcfg: Option<&std::path::Path>, args: &[&str]| {
        let mut c = sb.cmd(args);
        c.current_dir(sb.path().join("elsewhere"));
        if let Some(p) = envcfg {
            c.env("SEGSYNC_CONFIG", p);
        }
        c.output().unwrap()
    };
    let out = run_in(None, &["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no configuration"));
    assert_eq!(run_in(Some(&cfg), &["list"]).status.code(), Some(0));
    let out = run_in(None, &["--config", cfg.to_str().unwrap(), "list"]);
    assert_eq!(out.status.code(), Some(0));
    // The database is relative to the config file, not the working directory.
    assert!(sb.path().join("segments.db").exists());
    assert!(!sb.path().join("elsewhere/segments.db").exists());
}

#[test]
fn bad_config_names_key_and_line() {
    let sb = Sandbox::new("timezone = \"Europe/Paris\"\nsync_time = \"25:00\"\n");
    let r = sb.run(&["list"]).expect(2);
    assert!(
        r.stderr.contains("segments.toml:2") && r.stderr.contains("sync_time"),
        "{}",
        r.stderr
    );
    let sb = Sandbox::new("[[ftp]]\nname = \"a\"\nurl = \"ftp://h\"\npasword_env = \"X\"\n");
    let r = sb.run(&["list"]).expect(2);
    assert!(
        r.stderr.contains("pasword_env") && r.stderr.contains("line 4"),
        "{}",
        r.stderr
    );
}

#[test]
fn now_must_be_rfc3339() {
    let sb = sandbox();
    let r = sb.run(&["--now", "tomorrow", "list"]).expect(2);
    assert!(r.stderr.contains("RFC 3339"), "{}", r.stderr);
}

#[test]
fn completions_for_each_shell() {
    let sb = sandbox();
    for shell in ["bash", "zsh", "fish"] {
        let out = sb.run(&["completions", shell]).expect(0).stdout;
        assert!(out.contains("run-due"), "{shell}");
    }
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    // `segsync show NAME | head -1`: the pipe closes before segsync writes.
    let sb = sandbox();
    create_weekly(&sb, "hv");
    for args in [
        vec!["--now", NOW, "show", "hv"],
        vec!["--now", NOW, "list"],
        vec!["completions", "bash"],
    ] {
        let mut child = sb
            .cmd(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn check_says_when_no_email_is_configured() {
    // Nothing listens on port 1: the connection is refused at once.
    let sb = Sandbox::new("[[ftp]]\nname = \"down\"\nurl = \"ftp://127.0.0.1:1\"\n");
    let r = sb.run(&["check"]).expect(1);
    assert!(r.stdout.contains("FAIL"), "{}", r.stdout);
    assert!(r.stdout.contains("no [smtp] section"), "{}", r.stdout);
    // The JSON array holds connections only.
    let v = sb.run(&["check", "--json"]).expect(1).json();
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[test]
fn a_window_with_no_slot_left_is_warned_about() {
    let sb = sandbox();
    // Monthly, window over before now (2026-12-03): never scheduled.
    let r = sb
        .run_at(
            NOW,
            &[
                "create",
                "ended",
                "--type",
                "scd",
                "--ftp",
                "apac",
                "--frequency",
                "monthly",
                "--from",
                "2026-01-01",
                "--to",
                "2026-12-02",
            ],
        )
        .expect(0);
    assert!(r.stderr.contains("no slot is left"), "{}", r.stderr);
    assert!(r.stderr.contains("segsync edit ended --to"), "{}", r.stderr);
    let r = sb.run_at(NOW, &["edit", "ended", "--no-end"]).expect(0);
    assert!(!r.stderr.contains("no slot"), "{}", r.stderr);
    // An end before today with no --from names the default start.
    let r = sb
        .run_at(
            NOW,
            &[
                "create",
                "past",
                "--type",
                "scd",
                "--ftp",
                "apac",
                "--frequency",
                "daily",
                "--to",
                "2026-01-01",
            ],
        )
        .expect(2);
    assert!(
        r.stderr.contains("--from defaults to today"),
        "{}",
        r.stderr
    );
}

#[test]
fn command_help_keeps_global_options_apart() {
    let out = sandbox().run(&["create", "--help"]).expect(0).stdout;
    let global = out.find("Global options:").expect(&out);
    // The command's own options come first, the shared ones after.
    assert!(out.find("--draft").unwrap() < global, "{out}");
    assert!(out.find("--now <TIME>").unwrap() > global, "{out}");
}

#[test]
fn a_config_that_is_not_a_text_file_is_a_configuration_error() {
    let sb = sandbox();
    std::fs::create_dir(sb.path().join("conf.d")).unwrap();
    let r = sb.run(&["--config", "conf.d", "list"]).expect(2);
    assert!(r.stderr.contains("`conf.d`"), "{}", r.stderr);
    assert!(r.stderr.contains("it is a folder"), "{}", r.stderr);
    sb.write("bin.toml", b"database = \"\xff\"\n");
    let r = sb.run(&["--config", "bin.toml", "list"]).expect(2);
    assert!(r.stderr.contains("not UTF-8"), "{}", r.stderr);
}

#[test]
fn a_database_file_that_is_not_sqlite_is_refused_untouched() {
    let sb = sandbox();
    let db = sb.write("segments.db", "id,name\n1,not a database\n");
    let r = sb.run_at(NOW, &["list"]).expect(2);
    assert!(
        r.stderr.contains("is not a SQLite database"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("`database`"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(db).unwrap(),
        "id,name\n1,not a database\n"
    );
}

#[test]
fn send_test_needs_an_smtp_section() {
    let sb = Sandbox::new("timezone = \"UTC\"\n");
    let r = sb
        .run(&["check", "--send-test", "ops@example.com"])
        .expect(2);
    assert!(
        r.stderr.contains("--send-test needs an [smtp] section"),
        "{}",
        r.stderr
    );
}
