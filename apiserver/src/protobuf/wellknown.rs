//! The messages whose JSON is not an object of their fields: metav1 `Time`, `MicroTime`,
//! `Duration`, `FieldsV1`, `intstr.IntOrString`, `resource.Quantity`, `runtime.RawExtension`.

use super::*;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{Duration, FieldsV1, MicroTime, Time};
use k8s_pb::apimachinery::pkg::runtime::RawExtension;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;

/// Unix seconds of Go's zero `time.Time` (January 1, year 1, UTC), which marshals as `null`.
const GO_ZERO_TIME: i64 = -62_135_596_800;
/// Unix seconds of 0000-01-01T00:00:00Z, the first instant RFC 3339 can write.
const FIRST_RFC3339: i64 = -62_167_219_200;
/// Unix seconds of 9999-12-31T23:59:59Z, the last instant RFC 3339 can write.
const LAST_RFC3339: i64 = 253_402_300_799;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Formats Unix seconds as RFC 3339 in UTC, `2024-01-02T03:04:05` (the zone is the caller's).
fn rfc3339_seconds(seconds: i64, what: &str) -> Result<String> {
    if !(FIRST_RFC3339..=LAST_RFC3339).contains(&seconds) {
        return Err(ApiError::bad_request(format!(
            "{what}: {seconds} seconds is outside the range of RFC 3339 times (years 0 to 9999)"
        )));
    }
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    ))
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01, by
/// counting 400-year eras of 146097 days from 0000-03-01 (so leap days end each year).
pub(super) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `metav1.Time`: whole seconds (Go drops the nanoseconds when it decodes protobuf).
impl ToJson for Time {
    fn to_json(&self) -> Result<Option<Value>> {
        let Time { seconds, nanos } = self;
        // Go writes a zero time as an empty message and reads an empty message as zero.
        if seconds.is_none() && nanos.is_none() {
            return Ok(None);
        }
        let seconds = seconds.unwrap_or(0);
        if seconds == GO_ZERO_TIME {
            return Ok(None);
        }
        let text = rfc3339_seconds(seconds, "metav1.Time")?;
        Ok(Some(Value::String(format!("{text}Z"))))
    }
}

/// `metav1.MicroTime`: RFC 3339 with 6 fractional digits (truncated, as Go formats it).
impl ToJson for MicroTime {
    fn to_json(&self) -> Result<Option<Value>> {
        let MicroTime { seconds, nanos } = self;
        if seconds.is_none() && nanos.is_none() {
            return Ok(None);
        }
        // Like Go's time.Unix, nanoseconds outside [0, 1e9) carry into the seconds.
        let nanos = i64::from(nanos.unwrap_or(0));
        let seconds = seconds
            .unwrap_or(0)
            .checked_add(nanos.div_euclid(NANOS_PER_SECOND))
            .ok_or_else(|| ApiError::bad_request("metav1.MicroTime: seconds out of range"))?;
        let micros = nanos.rem_euclid(NANOS_PER_SECOND) / 1000;
        if seconds == GO_ZERO_TIME && nanos.rem_euclid(NANOS_PER_SECOND) == 0 {
            return Ok(None);
        }
        let text = rfc3339_seconds(seconds, "metav1.MicroTime")?;
        Ok(Some(Value::String(format!("{text}.{micros:06}Z"))))
    }
}

/// `metav1.Duration`: Go's `time.Duration.String()`, e.g. `1h2m3s`, `1.5s`, `300ms`, `0s`.
impl ToJson for Duration {
    fn to_json(&self) -> Result<Option<Value>> {
        let Duration { duration } = self;
        Ok(Some(Value::String(go_duration(duration.unwrap_or(0)))))
    }
}

/// Formats nanoseconds the way Go's `time.Duration.String()` does.
fn go_duration(nanos: i64) -> String {
    let mut u = nanos.unsigned_abs();
    let sign = if nanos < 0 { "-" } else { "" };
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        // Below a second: one unit with a decimal fraction.
        let (unit, precision) = match u {
            0..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let (whole, fraction) = split_fraction(u, precision);
        return format!("{sign}{whole}{fraction}{unit}");
    }
    let (whole_seconds, fraction) = split_fraction(u, 9);
    u = whole_seconds;
    let mut out = format!("{}{fraction}s", u % 60);
    u /= 60;
    if u > 0 {
        out = format!("{}m{out}", u % 60);
        u /= 60;
        if u > 0 {
            out = format!("{u}h{out}");
        }
    }
    format!("{sign}{out}")
}

/// Splits `value` into `value / 10^precision` and its fraction as `.ddd` without trailing
/// zeros (empty when the fraction is zero).
fn split_fraction(value: u64, precision: u32) -> (u64, String) {
    let scale = 10u64.pow(precision);
    let fraction = value % scale;
    if fraction == 0 {
        return (value / scale, String::new());
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    (value / scale, format!(".{}", digits.trim_end_matches('0')))
}

/// `intstr.IntOrString`: a JSON number (type 0) or string (type 1).
impl ToJson for IntOrString {
    fn to_json(&self) -> Result<Option<Value>> {
        let IntOrString {
            r#type,
            int_val,
            str_val,
        } = self;
        match r#type.unwrap_or(0) {
            0 => Ok(Some(Value::from(int_val.unwrap_or(0)))),
            1 => Ok(Some(Value::String(str_val.clone().unwrap_or_default()))),
            other => Err(ApiError::bad_request(format!(
                "impossible IntOrString.Type {other}: must be 0 (int) or 1 (string)"
            ))),
        }
    }
}

/// `resource.Quantity`: its string (`"0"` for a quantity without one, Go's zero quantity).
impl ToJson for Quantity {
    fn to_json(&self) -> Result<Option<Value>> {
        let Quantity { string } = self;
        Ok(Some(Value::String(
            string.clone().unwrap_or_else(|| "0".to_string()),
        )))
    }
}

/// Parses embedded JSON (`RawExtension.raw`, `FieldsV1.raw`); no bytes is Go's `null`.
fn embedded_json(raw: &Option<Vec<u8>>, what: &str) -> Result<Option<Value>> {
    match raw.as_deref() {
        None | Some([]) => Ok(None),
        Some(bytes) => serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{what} does not hold JSON: {e}"))),
    }
}

/// `runtime.RawExtension`: the embedded object's JSON.
impl ToJson for RawExtension {
    fn to_json(&self) -> Result<Option<Value>> {
        let RawExtension { raw } = self;
        embedded_json(raw, "runtime.RawExtension")
    }
}

/// `metav1.FieldsV1`: the managed-fields set, itself JSON.
impl ToJson for FieldsV1 {
    fn to_json(&self) -> Result<Option<Value>> {
        let FieldsV1 { raw } = self;
        embedded_json(raw, "metav1.FieldsV1")
    }
}
