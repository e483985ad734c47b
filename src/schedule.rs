//! Slot arithmetic (pure): when a daily, weekly or monthly schedule is due.
//!
//! A slot is the instant of `sync_time` in the configured time zone on a
//! slot date: every date (daily), every Monday (weekly) or every 1st of a
//! month (monthly) inside the validity window `from..=to`. A schedule's
//! first slot is the first one at or after its anchor (creation, the last
//! edit of the upload settings, or re-activation).
//!
//! Slots are always computed from the calendar, date by date: a date plus
//! the sync time gives a local time, and the time zone turns that into an
//! instant. They are never chained by adding 24 hours or 7 days, which
//! would drift by an hour at every daylight-saving change.
//!
//! Traps: a local time inside a daylight-saving gap does not exist; the
//! slot moves to the first valid instant after the gap (the instant the
//! clocks jump). A local time that happens twice (the repeated hour in
//! autumn) uses the earlier instant. Both rules keep slots in order: a later
//! date never gives an earlier instant.
//!
//! This module reads no clock and no database; callers pass `now`.

use crate::config::Config;
use crate::segment::{Frequency, Schedule};
use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Utc,
};
use chrono_tz::Tz;

/// The slots of one schedule: its calendar, its window and its anchor.
#[derive(Debug, Clone)]
pub struct Plan {
    tz: Tz,
    time: NaiveTime,
    frequency: Frequency,
    from: NaiveDate,
    to: Option<NaiveDate>,
    anchor: DateTime<Utc>,
}

/// The next `n` slots at or after `now`, oldest first; empty when the
/// schedule has ended. `show` prints these.
pub fn upcoming(
    config: &Config,
    schedule: &Schedule,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    Plan::new(config, schedule, anchor)
        .from_instant(now)
        .take(n)
        .collect()
}

/// The instant of `time` on `date` in `tz`: the earlier instant of a
/// repeated local time, the end of the gap for a skipped one.
pub fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(early, late) => early.min(late).with_timezone(&Utc),
        LocalResult::None => gap_end(tz, local),
    }
}

/// The first instant whose local time is at or after `local`, which lies in
/// a gap. Local time only moves forward around a gap, so a binary search
/// over the UTC seconds of the two days before it finds that instant.
fn gap_end(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let offset_before = tz
        .offset_from_local_datetime(&(local - chrono::Duration::days(1)))
        .earliest()
        .map(|o| o.fix().local_minus_utc())
        .unwrap_or(0);
    // Read as if the old offset still held, `local` lies after the jump.
    let at_or_after = |secs: i64| {
        let t = DateTime::from_timestamp(secs, 0).expect("in range");
        t.with_timezone(&tz).naive_local() >= local
    };
    let mut hi = local.and_utc().timestamp() - i64::from(offset_before);
    // Two transitions within a day could leave the first guess short; a
    // few hours' steps find the far side in any real zone.
    for _ in 0..48 {
        if at_or_after(hi) {
            break;
        }
        hi += 3600;
    }
    let mut lo = hi - 2 * 86_400;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if at_or_after(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).expect("in range")
}

/// Whether `date` is a slot date of `frequency` (ignoring the window).
pub fn is_slot_date(frequency: Frequency, date: NaiveDate) -> bool {
    match frequency {
        Frequency::Daily => true,
        Frequency::Weekly => date.weekday() == chrono::Weekday::Mon,
        Frequency::Monthly => date.day() == 1,
    }
}

/// The first slot date on or after `date`.
fn date_on_or_after(frequency: Frequency, date: NaiveDate) -> Option<NaiveDate> {
    match frequency {
        Frequency::Daily => Some(date),
        Frequency::Weekly => {
            let ahead = (7 - date.weekday().num_days_from_monday()) % 7;
            date.checked_add_days(Days::new(u64::from(ahead)))
        }
        Frequency::Monthly if date.day() == 1 => Some(date),
        Frequency::Monthly => first_of_next_month(date),
    }
}

/// The last slot date on or before `date`.
fn date_on_or_before(frequency: Frequency, date: NaiveDate) -> Option<NaiveDate> {
    match frequency {
        Frequency::Daily => Some(date),
        Frequency::Weekly => {
            let back = date.weekday().num_days_from_monday();
            date.checked_sub_days(Days::new(u64::from(back)))
        }
        Frequency::Monthly => date.with_day(1),
    }
}

/// The slot date after slot date `date`.
fn next_date(frequency: Frequency, date: NaiveDate) -> Option<NaiveDate> {
    match frequency {
        Frequency::Daily => date.succ_opt(),
        Frequency::Weekly => date.checked_add_days(Days::new(7)),
        Frequency::Monthly => first_of_next_month(date),
    }
}

/// The slot date before slot date `date`.
fn prev_date(frequency: Frequency, date: NaiveDate) -> Option<NaiveDate> {
    match frequency {
        Frequency::Daily => date.pred_opt(),
        Frequency::Weekly => date.checked_sub_days(Days::new(7)),
        Frequency::Monthly => date.pred_opt().and_then(|d| d.with_day(1)),
    }
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    let (y, m) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
}

impl Plan {
    /// The plan of `schedule` under `config`'s time zone and sync time.
    pub fn new(config: &Config, schedule: &Schedule, anchor: DateTime<Utc>) -> Plan {
        Plan::with(config.timezone, config.sync_time, schedule, anchor)
    }

    /// The plan of `schedule` in `tz` at `time`.
    pub fn with(tz: Tz, time: NaiveTime, schedule: &Schedule, anchor: DateTime<Utc>) -> Plan {
        Plan {
            tz,
            time,
            frequency: schedule.frequency,
            from: schedule.from,
            to: schedule.to,
            anchor,
        }
    }

    /// The time zone slots are computed in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    fn instant(&self, date: NaiveDate) -> DateTime<Utc> {
        local_instant(self.tz, date, self.time)
    }

    fn in_window(&self, date: NaiveDate) -> bool {
        date >= self.from && self.to.is_none_or(|to| date <= to)
    }

    /// The local date of `t`, for starting a walk through the calendar.
    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// The first slot at or after `t` (and at or after the anchor), with its
    /// date.
    fn first_dated(&self, t: DateTime<Utc>) -> Option<(NaiveDate, DateTime<Utc>)> {
        let t = t.max(self.anchor);
        // Two days of margin: the slot of an earlier date can fall on a
        // later local date only when a gap pushes it past midnight.
        let start = self
            .local_date(t)
            .checked_sub_days(Days::new(2))?
            .max(self.from);
        let mut date = date_on_or_after(self.frequency, start)?;
        loop {
            if !self.in_window(date) {
                return None;
            }
            let slot = self.instant(date);
            if slot >= t {
                return Some((date, slot));
            }
            date = next_date(self.frequency, date)?;
        }
    }

    /// The first slot of the schedule, if its window has one after the
    /// anchor.
    pub fn first(&self) -> Option<DateTime<Utc>> {
        self.first_at_or_after(self.anchor)
    }

    /// The first slot at or after `t`.
    pub fn first_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.first_dated(t).map(|(_, s)| s)
    }

    /// The slot after slot (or any instant) `t`: the first one strictly
    /// later.
    pub fn after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut next = self.first_at_or_after(t)?;
        // A gap longer than a day can map two dates to one instant.
        while next <= t {
            next = self.first_at_or_after(next + chrono::Duration::seconds(1))?;
        }
        Some(next)
    }

    /// The latest slot at or before `t`; `None` before the first slot.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if t < self.anchor {
            return None;
        }
        // A slot of a later local date cannot be at or before `t` unless a
        // repeated hour pulls it back: one day of margin covers that.
        let mut start = self.local_date(t).checked_add_days(Days::new(1))?;
        if let Some(to) = self.to {
            start = start.min(to);
        }
        let mut date = date_on_or_before(self.frequency, start)?;
        loop {
            if date < self.from {
                return None;
            }
            let slot = self.instant(date);
            if slot < self.anchor {
                return None;
            }
            if slot <= t {
                return Some(slot);
            }
            date = prev_date(self.frequency, date)?;
        }
    }

    /// The slots at or after `t`, oldest first, to the end of the window.
    pub fn from_instant(&self, t: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut cur = self.first_dated(t);
        let mut last: Option<DateTime<Utc>> = None;
        std::iter::from_fn(move || loop {
            let (date, slot) = cur?;
            cur = next_date(self.frequency, date)
                .filter(|d| self.in_window(*d))
                .map(|d| (d, self.instant(d)));
            if last.is_some_and(|l| slot <= l) {
                continue;
            }
            last = Some(slot);
            return Some(slot);
        })
    }

    /// The slots strictly after `after` and strictly before `before`,
    /// newest first: the candidates for `missed`.
    pub fn between_newest_first(
        &self,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut cur = self.latest_at_or_before(before - chrono::Duration::seconds(1));
        std::iter::from_fn(move || {
            let slot = cur.filter(|s| *s > after)?;
            cur = self.latest_at_or_before(slot - chrono::Duration::seconds(1));
            Some(slot)
        })
    }
}

/// `t` as RFC 3339 with the offset of `tz`, as JSON output shows slots.
pub fn rfc3339_in(tz: Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `t` as `YYYY-MM-DD HH:MM ±HH:MM` in `tz`, as tables show slots.
pub fn display_in(tz: Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Australia, Europe};
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn sched(frequency: Frequency, from: &str, to: Option<&str>) -> Schedule {
        Schedule {
            ftp: "f".into(),
            path: String::new(),
            frequency,
            from: date(from),
            to: to.map(date),
        }
    }

    #[test]
    fn spec_examples() {
        let tz = chrono_tz::UTC;
        let weekly = sched(Frequency::Weekly, "2020-10-01", None);
        let p = Plan::with(tz, hm(2, 0), &weekly, utc("2020-10-01T10:00:00Z"));
        assert_eq!(p.first(), Some(utc("2020-10-05T02:00:00Z")));

        let monthly = sched(Frequency::Monthly, "2020-10-01", None);
        let early = Plan::with(tz, hm(2, 0), &monthly, utc("2020-10-01T01:00:00Z"));
        assert_eq!(early.first(), Some(utc("2020-10-01T02:00:00Z")));
        let late = Plan::with(tz, hm(2, 0), &monthly, utc("2020-10-01T02:00:01Z"));
        assert_eq!(late.first(), Some(utc("2020-11-01T02:00:00Z")));
        let exact = Plan::with(tz, hm(2, 0), &monthly, utc("2020-10-01T02:00:00Z"));
        assert_eq!(exact.first(), Some(utc("2020-10-01T02:00:00Z")));
    }

    #[test]
    fn window_bounds_and_end() {
        let s = sched(Frequency::Daily, "2021-03-10", Some("2021-03-12"));
        let p = Plan::with(chrono_tz::UTC, hm(2, 0), &s, utc("2021-01-01T00:00:00Z"));
        let all: Vec<_> = p.from_instant(utc("2000-01-01T00:00:00Z")).collect();
        assert_eq!(
            all,
            vec![
                utc("2021-03-10T02:00:00Z"),
                utc("2021-03-11T02:00:00Z"),
                utc("2021-03-12T02:00:00Z")
            ]
        );
        assert_eq!(
            p.latest_at_or_before(utc("2021-06-01T00:00:00Z")),
            all.last().copied()
        );
        assert_eq!(p.after(all[2]), None);
        assert!(p.from_instant(utc("2021-03-12T02:00:01Z")).next().is_none());
    }

    #[test]
    fn dst_gap_moves_to_end_of_gap_and_overlap_takes_earlier() {
        let ny = America::New_York;
        // 2021-03-14 02:30 does not exist in New York: clocks jump 02:00 -> 03:00 EDT.
        assert_eq!(
            local_instant(ny, date("2021-03-14"), hm(2, 30)),
            utc("2021-03-14T07:00:00Z")
        );
        // 2021-11-07 01:30 happens twice: first in EDT (-04:00).
        assert_eq!(
            local_instant(ny, date("2021-11-07"), hm(1, 30)),
            utc("2021-11-07T05:30:00Z")
        );
        // Samoa skipped 2011-12-30 entirely: the slot moves to the first
        // instant of 2011-12-31.
        assert_eq!(
            local_instant(chrono_tz::Pacific::Apia, date("2011-12-30"), hm(2, 0)),
            utc("2011-12-30T10:00:00Z")
        );
        // Lord Howe moves by 30 minutes: 02:00 -> 02:30 on 2021-10-03.
        assert_eq!(
            local_instant(Australia::Lord_Howe, date("2021-10-03"), hm(2, 15)),
            utc("2021-10-02T15:30:00Z")
        );
    }

    #[test]
    fn london_slots_follow_the_calendar_not_24h() {
        let s = sched(Frequency::Daily, "2021-03-27", Some("2021-03-29"));
        let p = Plan::with(Europe::London, hm(2, 0), &s, utc("2021-01-01T00:00:00Z"));
        let all: Vec<_> = p.from_instant(utc("2021-01-01T00:00:00Z")).collect();
        assert_eq!(
            all,
            vec![
                utc("2021-03-27T02:00:00Z"),
                // 02:00 is skipped on 2021-03-28: 01:00 GMT is 02:00 BST.
                utc("2021-03-28T01:00:00Z"),
                utc("2021-03-29T01:00:00Z")
            ]
        );
    }

    #[test]
    fn upcoming_reads_zone_and_time_from_the_config() {
        let text = "timezone = \"Asia/Kolkata\"\nsync_time = \"03:30\"\n";
        let config = Config::parse(text, std::path::Path::new("/tmp/segments.toml")).unwrap();
        let s = sched(Frequency::Weekly, "2026-11-01", Some("2026-11-20"));
        let anchor = utc("2026-11-01T00:00:00Z");
        let next = upcoming(&config, &s, anchor, utc("2026-11-03T00:00:00Z"), 5);
        // Mondays 9th and 16th at 03:30 IST (UTC+05:30); the 23rd is past `to`.
        assert_eq!(
            next,
            vec![utc("2026-11-08T22:00:00Z"), utc("2026-11-15T22:00:00Z")]
        );
        assert!(upcoming(&config, &s, anchor, utc("2026-11-17T00:00:00Z"), 5).is_empty());
    }

    /// The reference: walk every day of the window, resolving a skipped
    /// local time minute by minute.
    fn reference(
        tz: Tz,
        time: NaiveTime,
        s: &Schedule,
        anchor: DateTime<Utc>,
        horizon: NaiveDate,
    ) -> Vec<DateTime<Utc>> {
        let mut out: Vec<DateTime<Utc>> = Vec::new();
        let mut d = s.from;
        let end = s.to.map_or(horizon, |t| t.min(horizon));
        while d <= end {
            let matches = match s.frequency {
                Frequency::Daily => true,
                Frequency::Weekly => d.weekday() == chrono::Weekday::Mon,
                Frequency::Monthly => d.day() == 1,
            };
            if matches {
                let mut local = d.and_time(time);
                let slot = loop {
                    if let Some(t) = tz.from_local_datetime(&local).earliest() {
                        break t.with_timezone(&Utc);
                    }
                    local += chrono::Duration::minutes(1);
                };
                if slot >= anchor && out.last().is_none_or(|l| slot > *l) {
                    out.push(slot);
                }
            }
            d = d.succ_opt().unwrap();
        }
        out
    }

    fn zones() -> impl Strategy<Value = Tz> {
        prop_oneof![
            Just(chrono_tz::UTC),
            Just(Europe::London),
            Just(America::New_York),
            Just(Australia::Lord_Howe),
            Just(Asia::Kolkata),
            Just(Europe::Paris),
        ]
    }

    fn times() -> impl Strategy<Value = NaiveTime> {
        prop_oneof![
            // Inside or at the edges of gaps and repeated hours.
            Just(hm(2, 30)),
            Just(hm(1, 30)),
            Just(hm(2, 0)),
            Just(hm(2, 15)),
            Just(hm(1, 0)),
            (0u32..24, 0u32..60).prop_map(|(h, m)| hm(h, m)),
        ]
    }

    fn frequencies() -> impl Strategy<Value = Frequency> {
        prop_oneof![
            Just(Frequency::Daily),
            Just(Frequency::Weekly),
            Just(Frequency::Monthly)
        ]
    }

    const BASE: i64 = 1_577_836_800; // 2020-01-01T00:00:00Z

    fn instant(offset_minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(BASE + offset_minutes * 60, 0).unwrap()
    }

    fn day(n: u64) -> NaiveDate {
        date("2020-01-01").checked_add_days(Days::new(n)).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn matches_reference(
            tz in zones(),
            time in times(),
            frequency in frequencies(),
            from in 0u64..900,
            len in prop::option::of(0u64..400),
            anchor_min in 0i64..(1000 * 1440),
            probes in prop::collection::vec(0i64..(1400 * 1440), 4),
        ) {
            let s = Schedule {
                ftp: "f".into(),
                path: String::new(),
                frequency,
                from: day(from),
                to: len.map(|l| day(from + l)),
            };
            let anchor = instant(anchor_min);
            let plan = Plan::with(tz, time, &s, anchor);
            let horizon = day(1500);
            let all = reference(tz, time, &s, anchor, horizon);
            let cutoff = instant(1450 * 1440);
            let within = |t: DateTime<Utc>| t < cutoff;
            let all: Vec<_> = all.into_iter().filter(|t| within(*t)).collect();

            prop_assert_eq!(plan.first().filter(|t| within(*t)), all.first().copied().filter(|t| within(*t)));
            for p in probes {
                let now = instant(p);
                let want: Vec<_> = all.iter().copied().filter(|t| *t >= now).take(3).collect();
                let got: Vec<_> = plan.from_instant(now).take(3).filter(|t| within(*t)).collect();
                prop_assert_eq!(&got, &want, "upcoming from {}", now);

                let latest = all.iter().copied().rfind(|t| *t <= now);
                prop_assert_eq!(plan.latest_at_or_before(now), latest, "latest at {}", now);

                if let Some(l) = latest {
                    let next = all.iter().copied().find(|t| *t > l);
                    let got = plan.after(l).filter(|t| within(*t));
                    prop_assert_eq!(got, next, "after {}", l);
                }

                let older: Vec<_> = plan.between_newest_first(anchor, now).collect();
                let mut want: Vec<_> = all.iter().copied().filter(|t| *t > anchor && *t < now).collect();
                want.reverse();
                prop_assert_eq!(older, want, "between anchor and {}", now);
            }
        }
    }
}
