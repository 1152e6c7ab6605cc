//! Standard 5-field cron schedules (minute hour day-of-month month day-of-week), evaluated in
//! a time zone.
//!
//! Syntax: `*` (and `?` in the day fields), numbers, ranges `a-b`, steps `*/n`, `a-b/n` and
//! `a/n` (from `a` to the field's maximum), comma lists, month names `jan`–`dec` and day
//! names `sun`–`sat` (any case), day of week 7 = Sunday, and the macros `@yearly`
//! (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`. A `TZ=<zone>`
//! or `CRON_TZ=<zone>` prefix names the zone, as the cron library Kubernetes uses accepts.
//!
//! As in Vixie cron, when both day fields are restricted (neither starts with `*` or `?`) a
//! day matches if either matches; otherwise both must.
//!
//! Daylight-saving time: a wall-clock time that does not exist (skipped by a forward
//! transition) runs at the same distance after the transition (02:30 becomes 03:30); a
//! wall-clock time that occurs twice runs once, at its first occurrence.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// How far ahead (or back) a schedule is searched before it is taken to never fire
/// (`0 0 30 2 *`), in days: five years, like the cron library Kubernetes uses.
const SEARCH_DAYS: usize = 5 * 366;

/// The widest gap or overlap a time-zone transition makes, with margin: candidates this
/// close to a transition are compared by instant rather than by wall-clock time.
const TRANSITION_WINDOW: SignedDuration = SignedDuration::from_hours(3);

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    dom_star: bool,
    dow_star: bool,
}

/// A schedule with the zone its `TZ=`/`CRON_TZ=` prefix named, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub schedule: Schedule,
    pub time_zone: Option<String>,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of the first name (`jan` = 1, `sun` = 0).
    names_from: u32,
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_from: 0,
};
const DOM: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    names_from: 0,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
    names_from: 1,
};
/// Day of week accepts 0–7; 7 is folded onto 0 (Sunday) after parsing.
const DOW: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &DAYS,
    names_from: 0,
};

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(self.names_from + i as u32);
        }
        let n: u32 = s
            .parse()
            .map_err(|_| format!("failed to parse {} value {s:?}", self.name))?;
        if n < self.min || n > self.max {
            return Err(format!(
                "{} value {n} out of range ({}-{})",
                self.name, self.min, self.max
            ));
        }
        Ok(n)
    }

    /// The bits of one field, and whether it starts with `*` or `?`.
    fn parse(&self, text: &str) -> Result<(u64, bool), String> {
        let mut bits = 0u64;
        let star = text.starts_with('*') || text.starts_with('?');
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .map_err(|_| format!("failed to parse step {s:?} in {part:?}"))?;
                    if step == 0 {
                        return Err(format!(
                            "step of range should be a positive number: {part:?}"
                        ));
                    }
                    (r, step)
                }
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" || range == "?" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(a)?, self.value(b)?)
            } else {
                let v = self.value(range)?;
                // `a/n` runs from `a` to the maximum.
                if part.contains('/') {
                    (v, self.max)
                } else {
                    (v, v)
                }
            };
            if lo > hi {
                return Err(format!(
                    "beginning of range ({lo}) beyond end of range ({hi}): {part:?}"
                ));
            }
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok((bits, star))
    }
}

fn macro_fields(s: &str) -> Option<&'static str> {
    Some(match s.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Parses a schedule (see the module documentation for the syntax).
pub fn parse(expr: &str) -> Result<Parsed, String> {
    let mut s = expr.trim();
    let mut time_zone = None;
    for prefix in ["TZ=", "CRON_TZ="] {
        if let Some(rest) = s.strip_prefix(prefix) {
            let (zone, rest) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("missing schedule after {prefix}"))?;
            time_zone = Some(zone.to_string());
            s = rest.trim();
            break;
        }
    }
    let fields: Vec<&str> = if s.starts_with('@') {
        macro_fields(s)
            .ok_or_else(|| format!("unrecognized descriptor: {s}"))?
            .split(' ')
            .collect()
    } else {
        s.split_whitespace().collect()
    };
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s:?}",
            fields.len()
        ));
    }
    let (minutes, _) = MINUTE.parse(fields[0])?;
    let (hours, _) = HOUR.parse(fields[1])?;
    let (days_of_month, dom_star) = DOM.parse(fields[2])?;
    let (months, _) = MONTH.parse(fields[3])?;
    let (mut days_of_week, dow_star) = DOW.parse(fields[4])?;
    if days_of_week & (1 << 7) != 0 {
        days_of_week = (days_of_week & !(1 << 7)) | 1;
    }
    Ok(Parsed {
        schedule: Schedule {
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_star,
            dow_star,
        },
        time_zone,
    })
}

fn bits(mask: u64, max: i8) -> Vec<i8> {
    (0..=max).filter(|v| mask & (1u64 << v) != 0).collect()
}

fn add(ts: Timestamp, d: SignedDuration) -> Timestamp {
    ts.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Whether the zone's offset is the same across the window around `ts` (then wall-clock
/// order is instant order there).
fn stable_around(tz: &TimeZone, ts: Timestamp) -> bool {
    tz.to_offset(add(ts, -TRANSITION_WINDOW)) == tz.to_offset(add(ts, TRANSITION_WINDOW))
}

impl Schedule {
    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << d.day()) != 0;
        let dow = self.days_of_week & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The instant of a wall-clock time in `tz` (see the module documentation for DST).
    fn instant(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
        tz.to_ambiguous_timestamp(dt).compatible().ok()
    }

    /// The first time the schedule fires strictly after `after`, or None if it does not
    /// within five years.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let hours = bits(self.hours, 23);
        let minutes = bits(self.minutes, 59);
        let start = tz.to_datetime(after);
        // Wall-clock times this far before `start` cannot be after it.
        let floor = if stable_around(tz, after) {
            start
        } else {
            start.saturating_sub(TRANSITION_WINDOW)
        };
        let mut day = floor.date();
        let mut best: Option<(Timestamp, DateTime)> = None;
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(day) {
                'day: for &h in &hours {
                    for &m in &minutes {
                        let dt = day.at(h, m, 0, 0);
                        if dt < floor {
                            continue;
                        }
                        if let Some((b, bdt)) = best {
                            let limit = if stable_around(tz, b) {
                                bdt
                            } else {
                                bdt.saturating_add(TRANSITION_WINDOW)
                            };
                            if dt > limit {
                                break 'day;
                            }
                        }
                        let Some(ts) = Schedule::instant(tz, dt) else {
                            continue;
                        };
                        if ts > after && best.is_none_or(|(b, _)| ts < b) {
                            best = Some((ts, dt));
                        }
                    }
                }
            }
            if let Some((b, bdt)) = best {
                // A later day can only hold an earlier instant right at a transition, and
                // then only in the first hours of the next day.
                if stable_around(tz, b) || bdt.date() < day {
                    return Some(b);
                }
            }
            day = day.tomorrow().ok()?;
        }
        best.map(|(b, _)| b)
    }

    /// The last time the schedule fired at or before `at`, or None if it did not within
    /// five years.
    pub fn last_at_or_before(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let hours = bits(self.hours, 23);
        let minutes = bits(self.minutes, 59);
        let start = tz.to_datetime(at);
        let ceil = if stable_around(tz, at) {
            start
        } else {
            start.saturating_add(TRANSITION_WINDOW)
        };
        let mut day = ceil.date();
        let mut best: Option<(Timestamp, DateTime)> = None;
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(day) {
                'day: for &h in hours.iter().rev() {
                    for &m in minutes.iter().rev() {
                        let dt = day.at(h, m, 0, 0);
                        if dt > ceil {
                            continue;
                        }
                        if let Some((b, bdt)) = best {
                            let limit = if stable_around(tz, b) {
                                bdt
                            } else {
                                bdt.saturating_sub(TRANSITION_WINDOW)
                            };
                            if dt < limit {
                                break 'day;
                            }
                        }
                        let Some(ts) = Schedule::instant(tz, dt) else {
                            continue;
                        };
                        if ts <= at && best.is_none_or(|(b, _)| ts > b) {
                            best = Some((ts, dt));
                        }
                    }
                }
            }
            if let Some((b, bdt)) = best {
                if stable_around(tz, b) || bdt.date() > day {
                    return Some(b);
                }
            }
            day = day.yesterday().ok()?;
        }
        best.map(|(b, _)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn next(expr: &str, after: &str) -> Option<String> {
        let p = parse(expr).expect("parse");
        p.schedule
            .next_after(ts(after), &TimeZone::UTC)
            .map(|t| t.to_string())
    }

    fn prev(expr: &str, at: &str) -> Option<String> {
        let p = parse(expr).expect("parse");
        p.schedule
            .last_at_or_before(ts(at), &TimeZone::UTC)
            .map(|t| t.to_string())
    }

    #[test]
    fn every_minute() {
        assert_eq!(
            next("* * * * *", "2024-05-01T10:00:30Z").as_deref(),
            Some("2024-05-01T10:01:00Z")
        );
        // Strictly after.
        assert_eq!(
            next("* * * * *", "2024-05-01T10:01:00Z").as_deref(),
            Some("2024-05-01T10:02:00Z")
        );
        assert_eq!(
            prev("* * * * *", "2024-05-01T10:01:00Z").as_deref(),
            Some("2024-05-01T10:01:00Z")
        );
        assert_eq!(
            prev("* * * * *", "2024-05-01T10:01:59.9Z").as_deref(),
            Some("2024-05-01T10:01:00Z")
        );
        // Across midnight and the end of a year.
        assert_eq!(
            next("* * * * *", "2024-12-31T23:59:00Z").as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
        assert_eq!(
            prev("* * * * *", "2025-01-01T00:00:00Z").as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
    }

    #[test]
    fn ranges_steps_lists_and_names() {
        assert_eq!(
            next("*/15 * * * *", "2024-05-01T10:16:00Z").as_deref(),
            Some("2024-05-01T10:30:00Z")
        );
        assert_eq!(
            next("5/20 * * * *", "2024-05-01T10:46:00Z").as_deref(),
            Some("2024-05-01T11:05:00Z")
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2024-05-01T13:00:00Z").as_deref(),
            Some("2024-05-01T17:00:00Z")
        );
        assert_eq!(
            next("0 0 1,15 * *", "2024-05-02T00:00:00Z").as_deref(),
            Some("2024-05-15T00:00:00Z")
        );
        // 2024-05-01 is a Wednesday.
        assert_eq!(
            next("30 8 * * MON-FRI", "2024-05-03T09:00:00Z").as_deref(),
            Some("2024-05-06T08:30:00Z")
        );
        assert_eq!(
            next("0 0 * * 7", "2024-05-01T00:00:00Z").as_deref(),
            Some("2024-05-05T00:00:00Z")
        );
        assert_eq!(
            next("0 0 * * fri-7", "2024-05-04T12:00:00Z").as_deref(),
            Some("2024-05-05T00:00:00Z")
        );
        assert_eq!(
            next("0 12 * Feb,dec *", "2024-05-01T00:00:00Z").as_deref(),
            Some("2024-12-01T12:00:00Z")
        );
        assert_eq!(
            prev("0 12 * feb *", "2024-05-01T00:00:00Z").as_deref(),
            Some("2024-02-29T12:00:00Z")
        );
    }

    #[test]
    fn restricted_day_fields_match_either() {
        // The 13th or any Friday: 2024-05-03 is a Friday, before the 13th.
        assert_eq!(
            next("0 0 13 * 5", "2024-05-01T00:00:00Z").as_deref(),
            Some("2024-05-03T00:00:00Z")
        );
        // With a star in one of them, both must match: Fridays that are... every Friday.
        assert_eq!(
            next("0 0 * * 5", "2024-05-01T00:00:00Z").as_deref(),
            Some("2024-05-03T00:00:00Z")
        );
        // A step over the day of month counts as a star: odd days that are Mondays.
        assert_eq!(
            next("0 0 */2 * 1", "2024-05-01T00:00:00Z").as_deref(),
            Some("2024-05-13T00:00:00Z")
        );
    }

    #[test]
    fn macros() {
        assert_eq!(
            next("@hourly", "2024-05-01T10:00:00Z").as_deref(),
            Some("2024-05-01T11:00:00Z")
        );
        assert_eq!(
            next("@daily", "2024-05-01T10:00:00Z").as_deref(),
            Some("2024-05-02T00:00:00Z")
        );
        assert_eq!(
            next("@weekly", "2024-05-01T10:00:00Z").as_deref(),
            Some("2024-05-05T00:00:00Z")
        );
        assert_eq!(
            next("@monthly", "2024-05-01T10:00:00Z").as_deref(),
            Some("2024-06-01T00:00:00Z")
        );
        assert_eq!(
            next("@yearly", "2024-05-01T10:00:00Z").as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
        assert_eq!(
            parse("@annually").map(|p| p.schedule),
            parse("0 0 1 1 *").map(|p| p.schedule)
        );
    }

    #[test]
    fn never_firing_schedules_give_none() {
        assert_eq!(next("0 0 30 2 *", "2024-05-01T10:00:00Z"), None);
        assert_eq!(prev("0 0 31 4 *", "2024-05-01T10:00:00Z"), None);
        // Leap days are found (within five years).
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z").as_deref(),
            Some("2028-02-29T00:00:00Z")
        );
    }

    #[test]
    fn invalid_expressions_are_rejected() {
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
            "* * * foo *",
            "@every 5m",
            "TZ=UTC",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn time_zone_prefixes() {
        let p = parse("TZ=Europe/Berlin 0 3 * * *").expect("parse");
        assert_eq!(p.time_zone.as_deref(), Some("Europe/Berlin"));
        let p = parse("CRON_TZ=UTC  @daily").expect("parse");
        assert_eq!(p.time_zone.as_deref(), Some("UTC"));
        assert_eq!(parse("@daily").expect("parse").time_zone, None);
    }

    #[test]
    fn fixed_offset_zones_shift_wall_clock_times() {
        let tz = TimeZone::fixed(jiff::tz::offset(2));
        let p = parse("0 3 * * *").expect("parse");
        assert_eq!(
            p.schedule
                .next_after(ts("2024-05-01T00:00:00Z"), &tz)
                .map(|t| t.to_string())
                .as_deref(),
            Some("2024-05-01T01:00:00Z")
        );
    }

    /// US Eastern rules as a POSIX string, so the test needs no system time zone database.
    fn eastern() -> TimeZone {
        TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").expect("posix tz")
    }

    #[test]
    fn a_skipped_wall_clock_time_runs_after_the_gap() {
        // 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
        let p = parse("30 2 * * *").expect("parse");
        let tz = eastern();
        let t = p.schedule.next_after(ts("2024-03-10T05:00:00Z"), &tz);
        // 03:30 EDT = 07:30Z.
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2024-03-10T07:30:00Z")
        );
        // The day after it is 02:30 EDT again (06:30Z).
        let t2 = p.schedule.next_after(ts("2024-03-10T08:00:00Z"), &tz);
        assert_eq!(
            t2.map(|t| t.to_string()).as_deref(),
            Some("2024-03-11T06:30:00Z")
        );
        // Back from after the gap, the shifted run is found.
        let back = p
            .schedule
            .last_at_or_before(ts("2024-03-10T09:00:00Z"), &tz);
        assert_eq!(back, t);
    }

    #[test]
    fn the_earliest_instant_wins_next_to_a_gap() {
        // 02:45 (shifted to 03:45 EDT) and 03:15 EDT: 03:15 comes first.
        let p = parse("45 2 * * *").expect("parse");
        let q = parse("15,45 2,3 * * *").expect("parse");
        let tz = eastern();
        let after = ts("2024-03-10T06:00:00Z"); // 01:00 EST
        assert_eq!(
            p.schedule
                .next_after(after, &tz)
                .map(|t| t.to_string())
                .as_deref(),
            Some("2024-03-10T07:45:00Z")
        );
        assert_eq!(
            q.schedule
                .next_after(after, &tz)
                .map(|t| t.to_string())
                .as_deref(),
            Some("2024-03-10T07:15:00Z")
        );
    }

    #[test]
    fn a_repeated_wall_clock_time_runs_once() {
        // 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        let p = parse("30 1 * * *").expect("parse");
        let tz = eastern();
        let first = p.schedule.next_after(ts("2024-11-03T04:00:00Z"), &tz);
        // 01:30 EDT = 05:30Z.
        assert_eq!(
            first.map(|t| t.to_string()).as_deref(),
            Some("2024-11-03T05:30:00Z")
        );
        // Not again at 01:30 EST (06:30Z): the next day's.
        let second = p.schedule.next_after(ts("2024-11-03T05:30:00Z"), &tz);
        assert_eq!(
            second.map(|t| t.to_string()).as_deref(),
            Some("2024-11-04T06:30:00Z")
        );
        // Every minute: the repeated hour's wall-clock times already ran, so after 01:59 EDT
        // comes 02:00 EST (07:00Z).
        let every = parse("* * * * *").expect("parse");
        let t = every.schedule.next_after(ts("2024-11-03T05:59:00Z"), &tz);
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Some("2024-11-03T07:00:00Z")
        );
    }
}
