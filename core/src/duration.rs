//! Human durations as written in action files: `"45m"`, `"1h30m"`, `"10s"`, `"500ms"`, or a
//! bare number of seconds.

use std::time::Duration;

/// Why a duration was refused; the message suits a validation problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DurationError {
    /// Not a duration, with what is wrong in words.
    #[error("{0}")]
    Malformed(String),
    /// Negative, infinite or not a number.
    #[error("{0} is not a non-negative number of seconds")]
    Negative(String),
    /// More than [`MAX_DURATION`]: what was written, in words.
    #[error("{0} is longer than a year (the limit is 366 days)")]
    TooLong(String),
}

/// The longest duration anywhere in an action file (timeouts, waits, retry delays): a year,
/// leap day included. One limit, checked on the total of `"200d200d"` as on `"400d"`, at
/// validation and when a stored plan is read back alike, so every duration a plan holds can be
/// added to any time baton will see without overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86400);

/// Parses `"1h30m"`-style text.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = |message: String| DurationError::Malformed(message);
    let text = text.trim();
    if text.is_empty() {
        return Err(malformed(
            "empty duration; write e.g. \"30s\", \"45m\" or \"1h30m\"".into(),
        ));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_duration(seconds);
    }
    // Seconds as f64: every piece is checked to be finite and not negative, and the total
    // against the limit, before anything becomes a `Duration` (whose `+` panics on overflow).
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                malformed(format!(
                    "\"{text}\" has a number without a unit (ms, s, m, h, d)"
                ))
            })?;
        if digits == 0 {
            return Err(malformed(format!(
                "\"{text}\" is not a duration; write e.g. \"30s\", \"45m\" or \"1h30m\""
            )));
        }
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| malformed(format!("\"{text}\" has a malformed number")))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" => 86400.0,
            other => {
                return Err(malformed(format!(
                    "\"{text}\" has unknown unit \"{other}\" (use ms, s, m, h or d)"
                )))
            }
        };
        rest = &rest[unit_len..];
        total += value * factor;
        if total.is_nan() || total > MAX_DURATION.as_secs_f64() {
            let shown: String = text.chars().take(40).collect();
            let shown = if shown.len() < text.len() {
                format!("\"{shown}…\"")
            } else {
                format!("\"{shown}\"")
            };
            return Err(DurationError::TooLong(shown));
        }
    }
    Ok(Duration::from_secs_f64(total))
}

/// A number of seconds as a duration: finite, not negative, at most [`MAX_DURATION`].
pub(crate) fn seconds_to_duration(seconds: f64) -> Result<Duration, DurationError> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(DurationError::Negative(seconds.to_string()));
    }
    if seconds > MAX_DURATION.as_secs_f64() {
        let shown = if seconds < 1e12 {
            format!("{seconds}")
        } else {
            format!("{seconds:e}")
        };
        return Err(DurationError::TooLong(format!("{shown} seconds")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration in the syntax action files use, for display: `1h2m3s`, `4.5s`, `120ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs < 60 {
        let tenths = (ms % 1000) / 100;
        return if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        };
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m}m"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("45m"), Ok(Duration::from_secs(2700)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "abc", "10x", "-5", "5 m", "m5", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn the_limit_applies_to_the_total() {
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("8784h"), Ok(MAX_DURATION));
        let huge = format!("{}d", "9".repeat(400));
        for long in ["200d200d", "367d", "366d1ms", "31622401", &huge] {
            let err = parse_duration(long).expect_err(long).to_string();
            assert!(err.contains("longer than a year"), "{long}: {err}");
        }
        // A hundred thousand pieces, each within the limit: refused at the first excess.
        let repeated = "366d".repeat(100_000);
        let err = parse_duration(&repeated).expect_err("too long").to_string();
        assert!(err.starts_with("\"366d366d"), "{err}");
        assert!(err.len() < 200, "{err}");
        assert!(seconds_to_duration(1e20).is_err());
        assert_eq!(seconds_to_duration(366.0 * 86400.0), Ok(MAX_DURATION));
    }

    #[test]
    fn formats_round_trip() {
        for text in ["45m", "1h30m", "10s", "500ms", "2h", "1m5s"] {
            let d = parse_duration(text).expect("valid");
            assert_eq!(format_duration(d), text);
        }
    }
}
