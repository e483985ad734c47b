//! Applying `create` and `edit` options to a segment, and every check that
//! decides whether the result may be saved.
//!
//! Pure apart from reading the configuration: the commands load the
//! segment, call [`Options::parse`] and then [`apply`], and save what comes
//! back. Every refusal is a [`UsageError`] that names the option at fault.

use crate::cli::SegmentOpts;
use crate::config::Config;
use crate::error::UsageError;
use crate::segment::{normalize_path, DraftSettings, Frequency, Schedule, Segment, SegmentType};
use chrono::NaiveDate;

type Result<T> = std::result::Result<T, UsageError>;

/// Options given on the command line, parsed and checked one by one.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub seg_type: Option<SegmentType>,
    pub description: Option<String>,
    pub ftp: Option<String>,
    pub path: Option<String>,
    pub frequency: Option<Frequency>,
    pub from: Option<NaiveDate>,
    /// `Some(None)` removes the end date (`edit --no-end`).
    pub to: Option<Option<NaiveDate>>,
    pub recipients: Vec<String>,
    /// Replace the recipient list instead of adding to it.
    pub replace_recipients: bool,
    /// Remove the upload schedule (`edit --manual`).
    pub manual: bool,
}

fn usage(msg: String) -> UsageError {
    UsageError(msg)
}

fn parse_date(option: &str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        usage(format!(
            "{option} `{s}` is not a date; write it as YYYY-MM-DD, e.g. 2026-12-01"
        ))
    })
}

impl Options {
    /// Parses the raw options and checks each against the configuration.
    pub fn parse(o: &SegmentOpts, config: &Config) -> Result<Options> {
        let seg_type = o
            .seg_type
            .as_deref()
            .map(|t| {
                t.parse::<SegmentType>()
                    .map_err(|e| usage(format!("--type: {e}")))
            })
            .transpose()?;
        let frequency = o
            .frequency
            .as_deref()
            .map(|t| {
                t.parse::<Frequency>()
                    .map_err(|e| usage(format!("--frequency: {e}")))
            })
            .transpose()?;
        if let Some(name) = &o.ftp {
            if config.ftp_conn(name).is_none() {
                let known: Vec<&str> = config.ftp.iter().map(|c| c.name.as_str()).collect();
                let hint = if known.is_empty() {
                    format!("{} defines no [[ftp]] connection", config.path.display())
                } else {
                    format!("configured connections: {}", known.join(", "))
                };
                return Err(usage(format!("--ftp: unknown connection `{name}`; {hint}")));
            }
        }
        let path = o
            .path
            .as_deref()
            .map(|p| normalize_path(p).map_err(|e| usage(format!("--path: {e}"))))
            .transpose()?;
        let from = o
            .from
            .as_deref()
            .map(|d| parse_date("--from", d))
            .transpose()?;
        let to = o.to.as_deref().map(|d| parse_date("--to", d)).transpose()?;
        let mut recipients = Vec::new();
        for r in &o.recipients {
            let addr = r.trim().to_lowercase();
            if !crate::validate_email(&addr) {
                return Err(usage(format!("--recipient: `{r}` is not an email address")));
            }
            if !config.is_member(&addr) {
                return Err(usage(format!(
                    "--recipient: `{r}` is not a member of the organisation; add it to \
                     [organization] members in {} or choose a member",
                    config.path.display()
                )));
            }
            if !recipients.contains(&addr) {
                recipients.push(addr);
            }
        }
        Ok(Options {
            seg_type,
            description: o.description.clone(),
            ftp: o.ftp.clone(),
            path,
            frequency,
            from,
            to: to.map(Some),
            recipients,
            replace_recipients: false,
            manual: false,
        })
    }

    /// Whether any upload setting is among the options.
    pub fn touches_upload(&self) -> bool {
        self.manual
            || self.ftp.is_some()
            || self.path.is_some()
            || self.frequency.is_some()
            || self.from.is_some()
            || self.to.is_some()
    }

    /// Whether the options change nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.touches_upload()
            && self.seg_type.is_none()
            && self.description.is_none()
            && self.recipients.is_empty()
            && !self.replace_recipients
    }
}

/// Merges `opts` into the segment's current settings. `today` is the
/// current date in the organisation's time zone, the default for `from`.
/// With `complete`, the result must be a finished segment (a type, and
/// either no upload settings or all required ones); a draft may stay
/// partial.
pub fn apply(seg: &mut Segment, opts: &Options, today: NaiveDate, complete: bool) -> Result<()> {
    if let Some(t) = opts.seg_type {
        seg.seg_type = t;
        seg.draft.seg_type = Some(t);
    }
    if let Some(d) = &opts.description {
        seg.description = d.trim().to_string();
    }
    if opts.replace_recipients {
        seg.recipients = opts.recipients.clone();
    } else {
        for r in &opts.recipients {
            if !seg.recipients.contains(r) {
                seg.recipients.push(r.clone());
            }
        }
    }

    // Start from what the segment holds, as partial settings.
    let mut d = seg.settings();
    if opts.manual {
        d = DraftSettings {
            seg_type: d.seg_type,
            ..DraftSettings::default()
        };
    }
    if opts.ftp.is_some() {
        d.ftp = opts.ftp.clone();
    }
    if opts.path.is_some() {
        d.path = opts.path.clone();
    }
    if opts.frequency.is_some() {
        d.frequency = opts.frequency;
    }
    if opts.from.is_some() {
        d.from = opts.from;
    }
    if let Some(to) = opts.to {
        d.to = to;
    }
    if let (Some(from), Some(to)) = (d.from, d.to) {
        if from > to {
            return Err(usage(format!(
                "the validity window ends ({to}) before it starts ({from}): --from must be on \
                 or before --to"
            )));
        }
    }

    if !complete {
        d.seg_type = seg.draft.seg_type;
        seg.draft = d;
        seg.schedule = None;
        return Ok(());
    }

    let any = d.ftp.is_some()
        || d.path.is_some()
        || d.frequency.is_some()
        || d.from.is_some()
        || d.to.is_some();
    if !any {
        // No upload settings: a manual upload segment.
        seg.schedule = None;
        seg.draft = DraftSettings::default();
        return Ok(());
    }
    let mut missing = Vec::new();
    if d.ftp.is_none() {
        missing.push("--ftp NAME");
    }
    if d.frequency.is_none() {
        missing.push("--frequency daily|weekly|monthly");
    }
    if !missing.is_empty() {
        return Err(usage(format!(
            "a scheduled segment also needs {}; or give no upload option for a manual upload \
             segment",
            missing.join(" and ")
        )));
    }
    let from = d.from.unwrap_or(today);
    if let Some(to) = d.to {
        if from > to {
            // Without --from the start is today: say so, or the hint is a riddle.
            let start = if d.from.is_none() {
                " (--from defaults to today)"
            } else {
                ""
            };
            return Err(usage(format!(
                "the validity window ends ({to}) before it starts ({from}){start}: --from must \
                 be on or before --to"
            )));
        }
    }
    seg.schedule = Some(Schedule {
        ftp: d.ftp.expect("checked above"),
        path: d.path.unwrap_or_default(),
        frequency: d.frequency.expect("checked above"),
        from,
        to: d.to,
    });
    seg.draft = DraftSettings::default();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{AlertState, Status};
    use chrono::Utc;
    use std::path::Path;

    fn config() -> Config {
        Config::parse(
            "[[ftp]]\nname = \"apac\"\nurl = \"ftp://h\"\n[organization]\nmembers = [\"a@x.io\"]\n",
            Path::new("segments.toml"),
        )
        .unwrap()
    }

    fn blank() -> Segment {
        Segment {
            id: 0,
            name: "s".into(),
            description: String::new(),
            seg_type: SegmentType::Scd,
            status: Status::InProgress,
            schedule: None,
            draft: DraftSettings::default(),
            recipients: vec![],
            id_type: None,
            partition_column: None,
            schedule_anchor: Utc::now(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            alert_state: AlertState::Ok,
        }
    }

    fn opts(f: impl FnOnce(&mut SegmentOpts)) -> Result<Options> {
        let mut o = SegmentOpts::default();
        f(&mut o);
        Options::parse(&o, &config())
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
    }

    #[test]
    fn scheduled_needs_ftp_and_frequency() {
        let o = opts(|o| o.ftp = Some("apac".into())).unwrap();
        let e = apply(&mut blank(), &o, today(), true).unwrap_err();
        assert!(e.0.contains("--frequency"), "{e}");
        let o = opts(|o| {
            o.ftp = Some("apac".into());
            o.frequency = Some("weekly".into());
            o.path = Some("/drops/".into());
        })
        .unwrap();
        let mut s = blank();
        apply(&mut s, &o, today(), true).unwrap();
        let sc = s.schedule.unwrap();
        assert_eq!((sc.path.as_str(), sc.from, sc.to), ("drops", today(), None));
    }

    #[test]
    fn no_upload_options_make_a_manual_segment() {
        let mut s = blank();
        apply(&mut s, &opts(|_| {}).unwrap(), today(), true).unwrap();
        assert!(s.schedule.is_none());
        assert_eq!(s.upload_type(), "manual");
    }

    #[test]
    fn refusals() {
        assert!(opts(|o| o.ftp = Some("emea".into()))
            .unwrap_err()
            .0
            .contains("apac"));
        assert!(opts(|o| o.path = Some("../x".into()))
            .unwrap_err()
            .0
            .contains("--path"));
        assert!(opts(|o| o.recipients = vec!["b@x.io".into()])
            .unwrap_err()
            .0
            .contains("member"));
        assert!(opts(|o| o.recipients = vec!["nope".into()])
            .unwrap_err()
            .0
            .contains("email"));
        assert!(opts(|o| o.from = Some("1/2/2026".into()))
            .unwrap_err()
            .0
            .contains("YYYY-MM-DD"));
        assert!(opts(|o| o.seg_type = Some("scd2".into()))
            .unwrap_err()
            .0
            .contains("non-scd"));
        let o = opts(|o| {
            o.ftp = Some("apac".into());
            o.frequency = Some("daily".into());
            o.from = Some("2026-12-10".into());
            o.to = Some("2026-12-01".into());
        })
        .unwrap();
        assert!(apply(&mut blank(), &o, today(), true)
            .unwrap_err()
            .0
            .contains("before it starts"));
        // An end before today, with no --from: the default start is named.
        let o = opts(|o| {
            o.ftp = Some("apac".into());
            o.frequency = Some("daily".into());
            o.to = Some("2020-01-01".into());
        })
        .unwrap();
        assert!(apply(&mut blank(), &o, today(), true)
            .unwrap_err()
            .0
            .contains("(--from defaults to today)"));
    }

    #[test]
    fn drafts_stay_partial() {
        let mut s = blank();
        s.status = Status::Draft;
        let o = opts(|o| o.ftp = Some("apac".into())).unwrap();
        apply(&mut s, &o, today(), false).unwrap();
        assert_eq!(s.draft.ftp.as_deref(), Some("apac"));
        assert!(s.schedule.is_none());
    }
}
