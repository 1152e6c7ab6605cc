//! Kubernetes resource quantities (`"100m"`, `"1.5Gi"`, `"2e3"`) as integer milli-units.

/// Why a quantity string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string was empty.
    #[error("empty quantity")]
    Empty,
    /// The string is not a Kubernetes quantity.
    #[error("invalid quantity {0:?}")]
    Invalid(String),
    /// The value does not fit in an `i128` of milli-units.
    #[error("quantity {0:?} is out of range")]
    OutOfRange(String),
}

/// Parses a Kubernetes quantity (`"100m"`, `"1.5Gi"`, `"2e3"`, `"0.5"`, ...) into an integer
/// number of milli-units (so `"1"` is `1000` and `"100m"` is `100`). Fractions of a
/// milli-unit are rounded up (away from zero), as Kubernetes' `MilliValue` does.
///
/// Accepted: an optional sign, digits with an optional fractional part, then either nothing,
/// a decimal SI suffix (`n u m k M G T P E`), a binary suffix (`Ki Mi Gi Ti Pi Ei`) or a
/// decimal exponent (`e3`, `E-2`). Surrounding whitespace is ignored.
///
/// # Errors
///
/// [`QuantityError::Empty`] for an empty string, [`QuantityError::Invalid`] for anything
/// that is not a quantity, [`QuantityError::OutOfRange`] when the milli-value does not fit
/// in an `i128`.
pub fn parse_quantity(s: &str) -> Result<i128, QuantityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let invalid = || QuantityError::Invalid(s.to_string());
    let out_of_range = || QuantityError::OutOfRange(s.to_string());
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &s[int_start..i];
    let mut frac_digits = "";
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &s[frac_start..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(invalid());
    }
    let suffix = &s[i..];
    let (dec_exp, bin_exp): (i64, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ if suffix.starts_with(['e', 'E']) => {
            let exp = &suffix[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            (exp.parse::<i64>().map_err(|_| out_of_range())?, 0)
        }
        _ => return Err(invalid()),
    };
    // Mantissa: all significant digits as one integer, scaled by 10^-frac_len.
    let digits: String = format!("{int_digits}{frac_digits}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if digits.len() > 38 {
        return Err(out_of_range());
    }
    let mantissa: u128 = digits.parse().map_err(|_| out_of_range())?;
    let frac_len = i64::try_from(frac_digits.len()).map_err(|_| out_of_range())?;
    let scaled = mantissa
        .checked_mul(1u128 << bin_exp)
        .ok_or_else(out_of_range)?;
    // Milli-units: one more factor of 10^3.
    let exp10 = dec_exp
        .checked_add(3)
        .and_then(|e| e.checked_sub(frac_len))
        .ok_or_else(out_of_range)?;
    let magnitude = if exp10 >= 0 {
        let exp = u32::try_from(exp10).map_err(|_| out_of_range())?;
        let factor = 10u128.checked_pow(exp).ok_or_else(out_of_range)?;
        scaled.checked_mul(factor).ok_or_else(out_of_range)?
    } else {
        match u32::try_from(-exp10)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
        {
            Some(divisor) => scaled.div_ceil(divisor),
            // The divisor exceeds u128, so the value is a positive fraction of a milli-unit.
            None => 1,
        }
    };
    let value = i128::try_from(magnitude).map_err(|_| out_of_range())?;
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: i128 = 1024 * 1024 * 1024 * 1000;

    #[test]
    fn quantity_plain_and_decimal_suffixes() {
        assert_eq!(parse_quantity("1"), Ok(1000));
        assert_eq!(parse_quantity("100m"), Ok(100));
        assert_eq!(parse_quantity("0"), Ok(0));
        assert_eq!(parse_quantity("+2"), Ok(2000));
        assert_eq!(parse_quantity("-1"), Ok(-1000));
        assert_eq!(parse_quantity("2k"), Ok(2_000_000));
        assert_eq!(parse_quantity("1M"), Ok(1_000_000_000));
        assert_eq!(parse_quantity("1G"), Ok(1_000_000_000_000));
        assert_eq!(parse_quantity("1T"), Ok(10i128.pow(15)));
        assert_eq!(parse_quantity("1P"), Ok(10i128.pow(18)));
        assert_eq!(parse_quantity("1E"), Ok(10i128.pow(21)));
        assert_eq!(parse_quantity("500u"), Ok(1), "0.5 milli rounds up");
        assert_eq!(parse_quantity("1n"), Ok(1), "tiny fractions round up");
        assert_eq!(parse_quantity("1000000n"), Ok(1));
        assert_eq!(parse_quantity("2000000n"), Ok(2));
    }

    #[test]
    fn quantity_binary_suffixes_and_fractions() {
        assert_eq!(parse_quantity("1Ki"), Ok(1024 * 1000));
        assert_eq!(parse_quantity("1Mi"), Ok(1024 * 1024 * 1000));
        assert_eq!(parse_quantity("1Gi"), Ok(GI));
        assert_eq!(parse_quantity("1.5Gi"), Ok(GI * 3 / 2));
        assert_eq!(parse_quantity("1Ti"), Ok(GI * 1024));
        assert_eq!(parse_quantity("1Pi"), Ok(GI * 1024 * 1024));
        assert_eq!(parse_quantity("1Ei"), Ok(GI * 1024 * 1024 * 1024));
        assert_eq!(parse_quantity("0.5"), Ok(500));
        assert_eq!(parse_quantity(".5"), Ok(500));
        assert_eq!(parse_quantity("5."), Ok(5000));
        assert_eq!(parse_quantity("0.1m"), Ok(1), "rounded up to a whole milli");
        assert_eq!(parse_quantity("1.000000001"), Ok(1001));
        assert_eq!(parse_quantity("007"), Ok(7000));
        assert_eq!(parse_quantity(" 3 "), Ok(3000));
    }

    #[test]
    fn quantity_exponents() {
        assert_eq!(parse_quantity("2e3"), Ok(2_000_000));
        assert_eq!(parse_quantity("2E3"), Ok(2_000_000));
        assert_eq!(parse_quantity("1e-3"), Ok(1));
        assert_eq!(parse_quantity("1.5e+2"), Ok(150_000));
        assert_eq!(parse_quantity("1e0"), Ok(1000));
        assert_eq!(parse_quantity("0e999"), Ok(0));
        assert_eq!(parse_quantity("1e-100"), Ok(1));
    }

    #[test]
    fn quantity_errors() {
        assert_eq!(parse_quantity(""), Err(QuantityError::Empty));
        assert_eq!(parse_quantity("   "), Err(QuantityError::Empty));
        for bad in [
            "abc", "1x", "1e", "1e+", "1.2.3", "Gi", "1Ki5", "1 Gi", "-", ".", "1mi", "1KI", "e3",
            "1ee3", "--1",
        ] {
            assert!(
                matches!(parse_quantity(bad), Err(QuantityError::Invalid(_))),
                "{bad:?} should be invalid, got {:?}",
                parse_quantity(bad)
            );
        }
        for huge in [
            "1e100",
            "1e99999999999999999999",
            "999999999999999999999999999999999999999999",
            "170141183460469231731687303715884105727",
        ] {
            assert!(
                matches!(parse_quantity(huge), Err(QuantityError::OutOfRange(_))),
                "{huge:?} should be out of range, got {:?}",
                parse_quantity(huge)
            );
        }
        // The largest values still fit.
        assert_eq!(parse_quantity("100Ei"), Ok(100 * GI * 1024 * 1024 * 1024));
    }
}
