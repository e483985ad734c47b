//! Parsing directory listings: MLSD facts (RFC 3659), Unix `ls -l` style
//! LIST lines and DOS/IIS style LIST lines. Pure functions over one line.
//!
//! Only MLSD is a standard; LIST output is whatever the server's author
//! chose. The parsers therefore recognise the two layouts seen in the wild
//! and return `None` for anything else (a `total 12` line, a banner), which
//! the caller skips. LIST times are coarse (minutes, sometimes only a date,
//! in the server's own zone), so [`Entry::exact_time`] tells the caller to
//! ask MDTM for the exact UTC time when it matters.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// What kind of directory entry a line describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    /// A folder, including `.` and `..` (MLSD `cdir` and `pdir`).
    Dir,
    /// A link, device or anything else that is not a regular file.
    Other,
}

/// One parsed listing line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub size: Option<u64>,
    pub modified: Option<DateTime<Utc>>,
    /// `true` when `modified` is exact UTC to the second (MLSD `modify`);
    /// `false` for LIST times, which are rounded and zone-less.
    pub exact_time: bool,
}

/// Parses one MLSD line: `fact=value;fact=value; name`.
pub fn parse_mlsd(line: &str) -> Option<Entry> {
    let line = line.trim_end_matches(['\r', '\n']);
    // Facts end at the first space; the name is everything after it, so a
    // name may itself hold spaces or semicolons.
    let (facts, name) = line.split_once(' ')?;
    if name.is_empty() {
        return None;
    }
    let mut kind = None;
    let mut size = None;
    let mut modified = None;
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=')?;
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                kind = Some(match value.to_ascii_lowercase().as_str() {
                    "file" => Kind::File,
                    "dir" | "cdir" | "pdir" => Kind::Dir,
                    _ => Kind::Other,
                })
            }
            "size" => size = value.parse().ok(),
            "modify" => modified = parse_mlsd_time(value),
            _ => {}
        }
    }
    Some(Entry {
        name: name.to_string(),
        kind: kind?,
        size,
        exact_time: modified.is_some(),
        modified,
    })
}

/// Parses an RFC 3659 time value `YYYYMMDDHHMMSS[.sss]` (always UTC).
pub fn parse_mlsd_time(value: &str) -> Option<DateTime<Utc>> {
    let whole = value.split('.').next()?;
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").ok()?;
    Some(Utc.from_utc_datetime(&t))
}

/// Parses one LIST line in either Unix or DOS layout. `now` resolves the
/// year that Unix listings leave out for recent files.
pub fn parse_list(line: &str, now: DateTime<Utc>) -> Option<Entry> {
    parse_unix(line, now).or_else(|| parse_dos(line))
}

/// Splits `line` into whitespace-separated tokens with their byte ranges.
fn tokens(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// The text after token `i`, without the separating blanks.
fn rest_after<'a>(line: &'a str, toks: &[(usize, &str)], i: usize) -> &'a str {
    let (start, tok) = toks[i];
    line[start + tok.len()..].trim_start()
}

fn month(tok: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let t = tok.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == t).map(|i| i as u32 + 1)
}

/// Parses a Unix `ls -l` style line, e.g.
/// `-rw-r--r--   1 ftp  ftp   1234 Oct  1 02:30 high__1.csv` or with a
/// year instead of a time for files older than about six months.
pub fn parse_unix(line: &str, now: DateTime<Utc>) -> Option<Entry> {
    let line = line.trim_end_matches(['\r', '\n']);
    let toks = tokens(line);
    let perms = toks.first()?.1;
    let kind = match perms.chars().next()? {
        '-' => Kind::File,
        'd' => Kind::Dir,
        'l' | 'c' | 'b' | 'p' | 's' => Kind::Other,
        _ => return None,
    };
    if perms.len() < 10 || !perms[1..10].chars().all(|c| "rwxsStTl-".contains(c)) {
        return None;
    }
    // Servers differ in the owner/group columns (some print one, some
    // none), so anchor on the date: month, day, then time or year, with the
    // size just before the month.
    let m = (2..toks.len().saturating_sub(3)).find(|&i| {
        month(toks[i].1).is_some()
            && toks[i - 1].1.bytes().all(|b| b.is_ascii_digit())
            && toks[i + 1]
                .1
                .parse::<u32>()
                .is_ok_and(|d| (1..=31).contains(&d))
    })?;
    let size = toks[m - 1].1.parse().ok();
    let mon = month(toks[m].1)?;
    let day: u32 = toks[m + 1].1.parse().ok()?;
    let modified = unix_time(mon, day, toks[m + 2].1, now)?;
    let name = rest_after(line, &toks, m + 2);
    if name.is_empty() {
        return None;
    }
    let name = match kind {
        // `name -> target`: the link's own name comes first.
        Kind::Other => name.split(" -> ").next().unwrap_or(name),
        _ => name,
    };
    Some(Entry {
        name: name.to_string(),
        kind,
        size,
        modified: Some(modified),
        exact_time: false,
    })
}

/// Resolves `Mon DD HH:MM` (recent, year left out) or `Mon DD YYYY`.
fn unix_time(mon: u32, day: u32, time_or_year: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some((h, mi)) = time_or_year.split_once(':') {
        let time = NaiveTime::from_hms_opt(h.parse().ok()?, mi.parse().ok()?, 0)?;
        // `ls` prints a time instead of a year for files from the last six
        // months, so the year is the one that does not put the file in the
        // future (a day of slack for clocks and zones).
        let limit = now + chrono::Duration::days(1);
        for year in [now.year(), now.year() - 1] {
            if let Some(d) = NaiveDate::from_ymd_opt(year, mon, day) {
                let t = Utc.from_utc_datetime(&d.and_time(time));
                if t <= limit {
                    return Some(t);
                }
            }
        }
        None
    } else {
        let year: i32 = time_or_year.parse().ok()?;
        let d = NaiveDate::from_ymd_opt(year, mon, day)?;
        Some(Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)))
    }
}

/// Parses a DOS/IIS style line, e.g.
/// `10-01-20  02:30PM                 1234 high__1.csv` or
/// `10-01-2020  14:30       <DIR>          exports`.
pub fn parse_dos(line: &str) -> Option<Entry> {
    let line = line.trim_end_matches(['\r', '\n']);
    let toks = tokens(line);
    if toks.len() < 4 {
        return None;
    }
    let date = dos_date(toks[0].1)?;
    let (time, next) = dos_time(toks[1].1, toks.get(2).map(|t| t.1))?;
    let size_tok = toks.get(next)?.1;
    let (kind, size) = if size_tok.eq_ignore_ascii_case("<DIR>") {
        (Kind::Dir, None)
    } else {
        let digits: String = size_tok.chars().filter(|c| *c != ',').collect();
        (Kind::File, Some(digits.parse::<u64>().ok()?))
    };
    let name = rest_after(line, &toks, next);
    if name.is_empty() {
        return None;
    }
    Some(Entry {
        name: name.to_string(),
        kind,
        size,
        modified: Some(Utc.from_utc_datetime(&date.and_time(time))),
        exact_time: false,
    })
}

/// `MM-DD-YY` or `MM-DD-YYYY`; two-digit years below 70 are 20xx.
fn dos_date(tok: &str) -> Option<NaiveDate> {
    let mut parts = tok.split('-');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let year: i32 = match y.len() {
        2 => {
            let y: i32 = y.parse().ok()?;
            if y < 70 {
                2000 + y
            } else {
                1900 + y
            }
        }
        4 => y.parse().ok()?,
        _ => return None,
    };
    NaiveDate::from_ymd_opt(year, m.parse().ok()?, d.parse().ok()?)
}

/// `02:30PM`, `02:30 PM` or `14:30`; returns the time and the index of the
/// token after it.
fn dos_time(tok: &str, after: Option<&str>) -> Option<(NaiveTime, usize)> {
    let upper = tok.to_ascii_uppercase();
    let (clock, meridiem, next) = if let Some(c) = upper.strip_suffix("AM") {
        (c.to_string(), Some(false), 2)
    } else if let Some(c) = upper.strip_suffix("PM") {
        (c.to_string(), Some(true), 2)
    } else {
        match after.map(str::to_ascii_uppercase).as_deref() {
            Some("AM") => (upper.clone(), Some(false), 3),
            Some("PM") => (upper.clone(), Some(true), 3),
            _ => (upper.clone(), None, 2),
        }
    };
    let (h, m) = clock.split_once(':')?;
    let (mut h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match meridiem {
        Some(pm) => {
            if !(1..=12).contains(&h) {
                return None;
            }
            h %= 12;
            if pm {
                h += 12;
            }
        }
        None if h > 23 => return None,
        None => {}
    }
    Some((NaiveTime::from_hms_opt(h, m, 0)?, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn file(name: &str, size: u64, modified: &str, exact: bool) -> Entry {
        Entry {
            name: name.into(),
            kind: Kind::File,
            size: Some(size),
            modified: Some(t(modified)),
            exact_time: exact,
        }
    }

    #[test]
    fn mlsd_facts() {
        assert_eq!(
            parse_mlsd("type=file;size=1234;modify=20201001023005;UNIX.mode=0644; high__1.csv"),
            Some(file("high__1.csv", 1234, "2020-10-01T02:30:05Z", true))
        );
        // Fact names and the type value are case-insensitive; fractions of
        // a second are dropped; the name keeps its spaces and semicolons.
        assert_eq!(
            parse_mlsd("Type=File;Size=7;Modify=20201001023005.123; a b;c.csv"),
            Some(file("a b;c.csv", 7, "2020-10-01T02:30:05Z", true))
        );
        let cdir = parse_mlsd("type=cdir;sizd=4096;modify=20201001023005; .").unwrap();
        assert_eq!((cdir.kind, cdir.name.as_str()), (Kind::Dir, "."));
        let pdir = parse_mlsd("type=pdir;modify=20201001023005; ..").unwrap();
        assert_eq!(pdir.kind, Kind::Dir);
        let link = parse_mlsd("type=OS.unix=slink:/x;size=3; l").unwrap();
        assert_eq!(link.kind, Kind::Other);
        let no_time = parse_mlsd("type=file;size=3; x.csv").unwrap();
        assert_eq!((no_time.modified, no_time.exact_time), (None, false));
        assert_eq!(parse_mlsd("garbage"), None);
        assert_eq!(parse_mlsd("size=3; no-type.csv"), None);
    }

    #[test]
    fn mlsd_time_rejects_malformed_values() {
        assert_eq!(parse_mlsd_time("2020100102300"), None);
        assert_eq!(parse_mlsd_time("20201301023000"), None);
        assert_eq!(parse_mlsd_time("2020100102300x"), None);
    }

    #[test]
    fn unix_time_form_takes_the_year_that_is_not_in_the_future() {
        let now = t("2021-02-10T12:00:00Z");
        assert_eq!(
            parse_unix(
                "-rw-r--r--    1 1000     1000         1234 Jan 15 02:30 high__1.csv",
                now
            ),
            Some(file("high__1.csv", 1234, "2021-01-15T02:30:00Z", false))
        );
        // December seen in February is last year's.
        assert_eq!(
            parse_unix(
                "-rw-r--r--    1 ftp      ftp            9 Dec 31 23:59 high__2.csv",
                now
            ),
            Some(file("high__2.csv", 9, "2020-12-31T23:59:00Z", false))
        );
    }

    #[test]
    fn unix_year_form() {
        let now = t("2021-02-10T12:00:00Z");
        assert_eq!(
            parse_unix(
                "-rw-r--r--   1 owner group 42 Nov  5  2018 old file.csv",
                now
            ),
            Some(file("old file.csv", 42, "2018-11-05T00:00:00Z", false))
        );
    }

    #[test]
    fn unix_variants() {
        let now = t("2021-02-10T12:00:00Z");
        // No group column, as some servers print.
        let e = parse_unix("-rw-r--r-- 1 owner 5 Feb 01 10:00 a.csv", now).unwrap();
        assert_eq!((e.name.as_str(), e.size), ("a.csv", Some(5)));
        // A file name with several spaces, and an ACL marker on the mode.
        let e = parse_unix("-rw-r--r--+ 1 u g 5 Feb 01 10:00 a  b c.csv", now).unwrap();
        assert_eq!(e.name, "a  b c.csv");
        // Dot entries and folders are folders.
        let dot = parse_unix("drwxr-xr-x    2 0 0 4096 Feb 01 10:00 .", now).unwrap();
        assert_eq!((dot.kind, dot.name.as_str()), (Kind::Dir, "."));
        let up = parse_unix("drwxr-xr-x    2 0 0 4096 Feb 01 10:00 ..", now).unwrap();
        assert_eq!((up.kind, up.name.as_str()), (Kind::Dir, ".."));
        let link = parse_unix("lrwxrwxrwx 1 u g 7 Feb 01 10:00 cur.csv -> a.csv", now).unwrap();
        assert_eq!((link.kind, link.name.as_str()), (Kind::Other, "cur.csv"));
        // A file named like a month still parses.
        let e = parse_unix("-rw-r--r-- 1 u g 3 Feb 01 10:00 Mar 3 report.csv", now).unwrap();
        assert_eq!(e.name, "Mar 3 report.csv");
        assert_eq!(parse_unix("total 12", now), None);
        assert_eq!(parse_unix("", now), None);
    }

    #[test]
    fn dos_lines() {
        assert_eq!(
            parse_dos("10-01-20  02:30PM                 1234 high__1.csv"),
            Some(file("high__1.csv", 1234, "2020-10-01T14:30:00Z", false))
        );
        assert_eq!(
            parse_dos("10-01-2020  12:05AM       1,234 with space.csv"),
            Some(file("with space.csv", 1234, "2020-10-01T00:05:00Z", false))
        );
        assert_eq!(
            parse_dos("10-01-99  14:30  7 x.csv"),
            Some(file("x.csv", 7, "1999-10-01T14:30:00Z", false))
        );
        let d = parse_dos("10-01-20  02:30 PM       <DIR>          exports").unwrap();
        assert_eq!(
            (d.kind, d.name.as_str(), d.size),
            (Kind::Dir, "exports", None)
        );
        assert_eq!(parse_dos("13-01-20  02:30PM  1 x.csv"), None);
        assert_eq!(parse_dos("10-01-20  13:30PM  1 x.csv"), None);
        assert_eq!(parse_dos("Directory of C:\\"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_listed_name_and_size_come_back(
            name in "[A-Za-z0-9_.-][A-Za-z0-9_. ;-]{0,30}",
            size in 0u64..u64::MAX / 2,
            month in 1u32..=12,
            day in 1u32..=28,
            year in 1990i32..2020,
            hour in 0u32..24,
            minute in 0u32..60,
        ) {
            let now = t("2021-06-15T12:00:00Z");
            const M: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let unix = format!(
                "-rw-r--r--    1 ftp      ftp      {size:>10} {} {day:>2}  {year} {name}",
                M[month as usize - 1]
            );
            let e = parse_unix(&unix, now).unwrap();
            proptest::prop_assert_eq!((&e.name, e.size), (&name, Some(size)));
            let date = NaiveDate::from_ymd_opt(year, month, day).unwrap();
            proptest::prop_assert_eq!(e.modified, Some(Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))));

            let (h12, ampm) = match hour { 0 => (12, "AM"), 1..=11 => (hour, "AM"), 12 => (12, "PM"), _ => (hour - 12, "PM") };
            let dos = format!("{month:02}-{day:02}-{year}  {h12:02}:{minute:02}{ampm} {size:>20} {name}");
            let e = parse_dos(&dos).unwrap();
            proptest::prop_assert_eq!((&e.name, e.size), (&name, Some(size)));
            let at = date.and_time(NaiveTime::from_hms_opt(hour, minute, 0).unwrap());
            proptest::prop_assert_eq!(e.modified, Some(Utc.from_utc_datetime(&at)));

            let mlsd = format!("type=file;size={size};modify={}; {name}", at.format("%Y%m%d%H%M%S"));
            let e = parse_mlsd(&mlsd).unwrap();
            proptest::prop_assert_eq!((&e.name, e.size, e.exact_time), (&name, Some(size), true));
        }
    }

    #[test]
    fn list_tries_both_layouts() {
        let now = t("2021-02-10T12:00:00Z");
        assert_eq!(
            parse_list("02-01-21  10:00AM   3 a.csv", now).unwrap().name,
            "a.csv"
        );
        assert_eq!(
            parse_list("-rw-r--r-- 1 u g 3 Feb 01 10:00 b.csv", now)
                .unwrap()
                .name,
            "b.csv"
        );
    }
}
