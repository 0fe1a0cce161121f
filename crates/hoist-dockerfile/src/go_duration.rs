//! Go's `time.Duration` as text: [`format`] prints one as `Duration.String()` does
//! (`1m30s`, `1.5s`, `150ms`, `0s`) and [`parse`] reads one as `time.ParseDuration` does
//! (`-1.5h`, `300ms`, `1m30s`), with Go's error texts. One home for every place hoist reads
//! or writes durations the way Docker's Go tools do: `HEALTHCHECK` flags, their listing,
//! image history texts, and `prune --filter until=`.

use std::time::Duration;

/// Go's `time.Duration.String()`: `1h2m3.5s`, `150ms`, `1.5µs`, `0s`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&trim_fraction(secs * 1_000_000_000 + sub, 1_000_000_000));
    out.push('s');
    out
}

/// `value / unit` with the fraction's trailing zeros dropped (`1.5`, `2`).
fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`: a signed sequence of decimal numbers with units (`ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`), like `300ms`, `-1.5h` or `1m30s`; returns nanoseconds.
/// Errors are Go's texts (`time: invalid duration "x"`).
pub fn parse(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let mut s = text;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_part, rest) = s.split_at(int_end);
        let mut value: u64 = 0;
        for d in int_part.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        s = rest;
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut has_fraction = false;
        if let Some(rest) = s.strip_prefix('.') {
            let frac_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            has_fraction = frac_end > 0;
            let mut overflowed = false;
            for d in rest[..frac_end].bytes() {
                if overflowed {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                {
                    Some(v) if v <= 1 << 63 => {
                        fraction = v;
                        scale *= 10.0;
                    }
                    _ => overflowed = true,
                }
            }
            s = &rest[frac_end..];
        }
        if int_part.is_empty() && !has_fraction {
            return Err(invalid());
        }
        let unit_end = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_end == 0 {
            return Err(format!("time: missing unit in duration \"{text}\""));
        }
        let (unit_name, rest) = s.split_at(unit_end);
        s = rest;
        let unit: u64 = match unit_name {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit \"{unit_name}\" in duration \"{text}\""
                ))
            }
        };
        if value > (1 << 63) / unit {
            return Err(invalid());
        }
        value *= unit;
        if fraction > 0 {
            // Go computes this in float64 and truncates.
            let extra = (fraction as f64 * (unit as f64 / scale)) as u64;
            value = value
                .checked_add(extra)
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(value)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(invalid)?;
    }
    if negative {
        // -(1<<63) is the one value that fits only when negative.
        Ok((total as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(total).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_and_parse_as_go_does() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_nanos(50)), "50ns");
        assert_eq!(format(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(format(Duration::from_millis(150)), "150ms");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_secs(30)), "30s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(format(Duration::new(3723, 500_000_000)), "1h2m3.5s");

        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse("-2ms"), Ok(-2_000_000));
        assert_eq!(parse("+3us"), Ok(3_000));
        assert_eq!(parse("3µs"), Ok(3_000));
        assert_eq!(parse(".5s"), Ok(500_000_000));
        assert_eq!(parse("1.s"), Ok(1_000_000_000));
        assert_eq!(parse("50ns"), Ok(50));
        assert_eq!(parse("0ms"), Ok(0));
        assert_eq!(parse("24h"), Ok(86_400_000_000_000));
        assert_eq!(parse("2h30m"), Ok(9_000_000_000_000));
        assert_eq!(parse("-1h"), Ok(-3_600_000_000_000));
        assert_eq!(
            parse("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".to_string())
        );
        assert_eq!(parse(""), Err("time: invalid duration \"\"".to_string()));
        assert_eq!(parse("."), Err("time: invalid duration \".\"".to_string()));
        assert_eq!(
            parse("1"),
            Err("time: missing unit in duration \"1\"".to_string())
        );
        assert_eq!(
            parse("1x"),
            Err("time: unknown unit \"x\" in duration \"1x\"".to_string())
        );
        assert_eq!(
            parse("9999999999h"),
            Err("time: invalid duration \"9999999999h\"".to_string())
        );
    }
}
