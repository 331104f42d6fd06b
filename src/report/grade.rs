//! Grading bands per request name: excellent / good / acceptable / poor by p95 latency
//! and error rate. Defaults below; an SLO file's `[grades]` table overrides them.

use crate::engine::judge::RequestRow;
use std::fmt::Write as _;

/// One band's upper limits (both must hold).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Band {
    /// Highest p95 latency in ms.
    pub p95_ms: f64,
    /// Highest error rate (0.01 = 1%).
    pub error_rate: f64,
}

/// The three limits; anything beyond `acceptable` is poor.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bands {
    /// Default p95 <= 200 ms and errors <= 0.1%.
    pub excellent: Band,
    /// Default p95 <= 500 ms and errors <= 1%.
    pub good: Band,
    /// Default p95 <= 1500 ms and errors <= 5%.
    pub acceptable: Band,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            excellent: Band { p95_ms: 200.0, error_rate: 0.001 },
            good: Band { p95_ms: 500.0, error_rate: 0.01 },
            acceptable: Band { p95_ms: 1500.0, error_rate: 0.05 },
        }
    }
}

/// A request's grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    /// Within `excellent`.
    Excellent,
    /// Within `good`.
    Good,
    /// Within `acceptable`.
    Acceptable,
    /// Beyond `acceptable`.
    Poor,
}

impl Grade {
    /// The lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Excellent => "excellent",
            Grade::Good => "good",
            Grade::Acceptable => "acceptable",
            Grade::Poor => "poor",
        }
    }
}

impl Bands {
    /// Grades a p95 and an error rate.
    pub fn grade(&self, p95_ms: f64, error_rate: f64) -> Grade {
        let within = |b: &Band| p95_ms <= b.p95_ms && error_rate <= b.error_rate;
        if within(&self.excellent) {
            Grade::Excellent
        } else if within(&self.good) {
            Grade::Good
        } else if within(&self.acceptable) {
            Grade::Acceptable
        } else {
            Grade::Poor
        }
    }

    /// Grades a request row.
    pub fn grade_row(&self, r: &RequestRow) -> Grade {
        let rate = if r.logical == 0 { 0.0 } else { r.failures as f64 / r.logical as f64 };
        self.grade(r.p95, rate)
    }

    /// The block printed after the summary.
    pub fn render(&self, rows: &[RequestRow]) -> String {
        if rows.is_empty() {
            return String::new();
        }
        let w = rows.iter().map(|r| r.method.len() + 1 + r.name.chars().count()).max().unwrap_or(0);
        let mut out = format!(
            "\ngrades (p95 / errors: excellent <= {}ms / {}%, good <= {}ms / {}%, acceptable <= {}ms / {}%)\n",
            self.excellent.p95_ms,
            self.excellent.error_rate * 100.0,
            self.good.p95_ms,
            self.good.error_rate * 100.0,
            self.acceptable.p95_ms,
            self.acceptable.error_rate * 100.0
        );
        for r in rows {
            writeln!(out, "  {:w$}  {}", format!("{} {}", r.method, r.name), self.grade_row(r).as_str()).ok();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_grade_by_p95_and_error_rate() {
        let b = Bands::default();
        assert_eq!(b.grade(150.0, 0.0), Grade::Excellent);
        assert_eq!(b.grade(150.0, 0.005), Grade::Good);
        assert_eq!(b.grade(1200.0, 0.0), Grade::Acceptable);
        assert_eq!(b.grade(100.0, 0.2), Grade::Poor);
        assert_eq!(b.grade(2000.0, 0.0), Grade::Poor);
    }
}
