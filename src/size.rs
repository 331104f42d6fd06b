//! Byte sizes as users write them: `1024`, `"512KB"`, `"10MB"`, `"1.5GiB"`. KB, MB and
//! GB are powers of 1000, KiB, MiB and GiB powers of 1024 (as `du --si` and `du`).

/// A size that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Nothing but blanks.
    #[error("empty size")]
    Empty,
    /// No number where one should be.
    #[error("expected a number in {0:?}")]
    NoNumber(String),
    /// A unit not in the list.
    #[error("unknown unit {unit:?} in {input:?} (use B, KB, MB, GB, KiB, MiB or GiB)")]
    Unit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A negative size.
    #[error("sizes cannot be negative: {0:?}")]
    Negative(String),
    /// Over 2^63 bytes.
    #[error("size too large: {0:?}")]
    TooLarge(String),
}

/// Parses a size in bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(SizeError::Empty);
    }
    if text.starts_with('-') {
        return Err(SizeError::Negative(input.to_string()));
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| SizeError::NoNumber(input.to_string()))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(SizeError::Unit { unit: other.to_string(), input: input.to_string() }),
    };
    let bytes = (value * factor).round();
    if !bytes.is_finite() || bytes >= 9.2e18 {
        return Err(SizeError::TooLarge(input.to_string()));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_decimal_and_binary_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512KB"), Ok(512_000));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_size("2gib"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("-1MB"), Err(SizeError::Negative("-1MB".into())));
        assert!(matches!(parse_size("10 MBs"), Err(SizeError::Unit { .. })));
        assert!(matches!(parse_size("MB"), Err(SizeError::NoNumber(_))));
        assert!(matches!(parse_size("99999999999GB"), Err(SizeError::TooLarge(_))));
        assert_eq!(parse_size(" "), Err(SizeError::Empty));
    }
}
