//! Kubernetes resource quantities (`64Mi`, `500m`) as numbers: bytes for memory, millicores
//! for CPU. Shared by the apiserver (LimitRanger) and the kubelet.

/// A Kubernetes quantity (`"64Mi"`, `"500m"`, `"1.5"`, `"2e3"`) in milli-units, rounded up;
/// `None` if it is not a quantity or does not fit.
pub fn milli_value(s: &str) -> Option<i128> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(end);
    let (negative, number) = match number.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    // The number as digits / 10^scale.
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let scale = i32::try_from(frac.len()).ok()?;
    let (base, exp): (i128, i32) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        e if e.starts_with(['e', 'E']) => (1, e[1..].parse().ok()?),
        _ => return None,
    };
    // milli = digits * base * 10^(exp + 3 - scale), rounded up.
    let power = exp + 3 - scale;
    let n = digits.checked_mul(base)?;
    let value = if power >= 0 {
        n.checked_mul(10i128.checked_pow(u32::try_from(power).ok()?)?)?
    } else {
        let d = 10i128.checked_pow(u32::try_from(-power).ok()?)?;
        (n + d - 1) / d
    };
    Some(if negative { -value } else { value })
}

/// Whole units (bytes), rounded up.
pub fn value(s: &str) -> Option<i64> {
    let m = milli_value(s)?;
    i64::try_from((m + 999).div_euclid(1000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(value("64Mi"), Some(64 << 20));
        assert_eq!(value("1G"), Some(1_000_000_000));
        assert_eq!(milli_value("500m"), Some(500));
        assert_eq!(milli_value("1.5"), Some(1500));
        assert_eq!(milli_value("2"), Some(2000));
        assert_eq!(milli_value("1e3"), Some(1_000_000));
        assert_eq!(milli_value("0.1m"), Some(1));
        assert_eq!(value("1.5Ki"), Some(1536));
        assert_eq!(milli_value("abc"), None);
        assert_eq!(milli_value("1Zi"), None);
        assert_eq!(milli_value(""), None);
    }
}
