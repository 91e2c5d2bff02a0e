//! Parsing of the human units the policy format uses: durations (`250ms`, `5s`, `1m`),
//! sizes (`512KiB`, `1MiB`) and rates (`100/min`). Kept strict so a typo is an error, never a surprise value.

use std::time::Duration;

/// Parses `250ms`, `5s`, `1m`, `2h`: a whole number followed by one unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = split_number(s)?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => {
            return Err(format!("'{s}' is not a duration: use a unit of ms, s, m or h, like 250ms or 5s"));
        }
    }
    .ok_or_else(|| format!("'{s}' is too long a duration"))?;
    Ok(Duration::from_millis(ms))
}

/// Parses `512KiB`, `1MiB`, `2GiB`, `10KB`, `100B` or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (n, unit) = split_number(s)?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!("'{s}' is not a size: use B, KiB, MiB or GiB, like 512KiB or 1MiB"));
        }
    };
    n.checked_mul(mult).ok_or_else(|| format!("'{s}' is too large a size"))
}

/// Formats a duration the way the policy format writes it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_owned(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

/// Formats a byte count the way the policy format writes it: `1MiB`, `512KiB`, `100B`.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0B".to_owned(),
        _ if bytes.is_multiple_of(1 << 30) => format!("{}GiB", bytes >> 30),
        _ if bytes.is_multiple_of(1 << 20) => format!("{}MiB", bytes >> 20),
        _ if bytes.is_multiple_of(1 << 10) => format!("{}KiB", bytes >> 10),
        _ => format!("{bytes}B"),
    }
}

/// Parses `100/min`, `5/s`, `10/hour`, `1000/day`: a whole number of requests per unit.
pub fn parse_rate(s: &str) -> Result<(u64, Duration), String> {
    let bad = || format!("'{s}' is not a rate: write requests per unit, like 100/min, 5/s, 10/hour or 1000/day");
    let (n, per) = s.trim().split_once('/').ok_or_else(bad)?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    let secs = match per.trim() {
        "s" | "sec" | "second" => 1,
        "min" | "minute" => 60,
        "hour" | "h" => 3_600,
        "day" | "d" => 86_400,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!("'{s}': a rate must allow at least 1 request"));
    }
    Ok((n, Duration::from_secs(secs)))
}

/// Formats a rate the way the policy format writes it.
pub fn format_rate(count: u64, period: Duration) -> String {
    let unit = match period.as_secs() {
        1 => "s",
        60 => "min",
        3_600 => "hour",
        86_400 => "day",
        _ => return format!("{count}/{}", format_duration(period)),
    };
    format!("{count}/{unit}")
}

/// The period as a customer reads it: "second", "minute", "hour", "day".
pub fn period_word(period: Duration) -> String {
    match period.as_secs() {
        1 => "second".into(),
        60 => "minute".into(),
        3_600 => "hour".into(),
        86_400 => "day".into(),
        _ => format_duration(period),
    }
}

fn split_number(s: &str) -> Result<(u64, &str), String> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("'{s}' must start with a whole number"));
    }
    let (n, unit) = s.split_at(digits);
    let n = n.parse::<u64>().map_err(|_| format!("'{s}' is too large"))?;
    Ok((n, unit.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [("250ms", Ok(250)), ("5s", Ok(5_000)), ("1m", Ok(60_000)), ("2h", Ok(7_200_000)), ("0s", Ok(0))];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).map(|d| d.as_millis() as u64), want, "{input}");
        }
        for bad in ["", "s", "5", "5 sec", "1.5s", "-1s", "5d"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("100"), Ok(100));
        for bad in ["", "MiB", "1 TiB", "1.5MiB", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100/min"), Ok((100, Duration::from_secs(60))));
        assert_eq!(parse_rate("5/s"), Ok((5, Duration::from_secs(1))));
        assert_eq!(parse_rate("10/hour"), Ok((10, Duration::from_secs(3600))));
        assert_eq!(format_rate(1000, Duration::from_secs(86_400)), "1000/day");
        for bad in ["", "100", "100/week", "0/s", "1.5/s", "/s", "-1/s"] {
            assert!(parse_rate(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn size_round_trip() {
        for s in ["512KiB", "1MiB", "2GiB", "100B"] {
            assert_eq!(format_size(parse_size(s).unwrap()), s);
        }
    }

    #[test]
    fn duration_round_trip() {
        for s in ["250ms", "5s", "1m", "2h", "1500ms"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(format_duration(d), s);
        }
    }
}
