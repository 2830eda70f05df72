//! `--max-age`: how old a reusable image may be. Durations are written
//! `7d`, `12h`, `30m`, `1s`, `2w` or a sum (`1d12h`); an image's age comes
//! from its config's `created` time (RFC 3339, as the engine writes it).
//! Pure: no clock is read here except by the caller.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses a `--max-age` value; the error says what is accepted.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration: write a number and a unit, e.g. 7d, 12h, 30m, 90s, 2w (or a sum: 1d12h)"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Parses an RFC 3339 time (`2026-11-30T08:24:01.123456789Z`,
/// `…+02:00`); `None` when it is not one.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            (rest.len() == 6 && rest.as_bytes()[3] == b':').then_some(())?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether an image created at `created` is older than `max_age` at `now`.
/// An unknown or unreadable creation time counts as expired: an image whose
/// age cannot be told is not kept past a limit the user set.
pub(crate) fn expired(created: Option<&str>, max_age: Duration, now: SystemTime) -> bool {
    match created.and_then(parse_rfc3339) {
        Some(t) => now.duration_since(t).unwrap_or_default() > max_age,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_issue_s_units() {
        let s = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(s("7d"), Ok(7 * 86_400));
        assert_eq!(s("12h"), Ok(43_200));
        assert_eq!(s("30m"), Ok(1800));
        assert_eq!(s("1s"), Ok(1));
        assert_eq!(s("2w"), Ok(14 * 86_400));
        assert_eq!(s("1d12h"), Ok(129_600));
        for bad in [
            "",
            "7",
            "d",
            "0s",
            "7x",
            "-1d",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("7").unwrap_err().contains("7d, 12h"));
    }

    #[test]
    fn rfc3339_as_engines_write_it() {
        let t = |s: &str| {
            parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs())
        };
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t("2026-11-30T08:24:01.123456789Z"), Some(1_796_027_041));
        assert_eq!(t("2026-11-30T10:24:01+02:00"), Some(1_796_027_041));
        assert_eq!(t("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2026-11-30",
            "2026-13-01T00:00:00Z",
            "2026-11-30T08:24:01",
            "x026-11-30T08:24:01Z",
        ] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn age_against_the_limit() {
        let created = "2026-11-30T08:24:01Z";
        let at = parse_rfc3339(created).expect("valid");
        let day = Duration::from_secs(86_400);
        assert!(!expired(Some(created), day, at + Duration::from_secs(3600)));
        assert!(expired(Some(created), day, at + 2 * day));
        assert!(expired(None, day, at), "unknown age counts as expired");
        assert!(expired(Some("yesterday"), day, at));
        assert!(
            !expired(Some(created), day, at - day),
            "a clock behind is not an age"
        );
    }
}
