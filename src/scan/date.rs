//! Calendar dates for `[[scan.allow]]` expiry: `YYYY-MM-DD`, compared in UTC.
//!
//! Expiry needs nothing more than parsing, ordering and today's date, so a date library would
//! be weight without use.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// A proleptic Gregorian calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// Why a string is not a `YYYY-MM-DD` date.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a date written as `YYYY-MM-DD`, such as `2027-03-01`")]
pub struct DateError(String);

impl Date {
    /// The date `year-month-day`, when it exists.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        valid.then_some(Self { year, month, day })
    }

    /// Today in UTC.
    pub fn today() -> Self {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::from_days_since_epoch(seconds / 86_400)
    }

    /// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    fn from_days_since_epoch(days: u64) -> Self {
        let z = days + 719_468;
        let era = z / 146_097;
        let day_of_era = z % 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = year_of_era + era * 400 + u64::from(month <= 2);
        Self {
            year: u16::try_from(year).unwrap_or(u16::MAX),
            month: u8::try_from(month).unwrap_or(1),
            day: u8::try_from(day).unwrap_or(1),
        }
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl FromStr for Date {
    type Err = DateError;

    fn from_str(text: &str) -> Result<Self, DateError> {
        let error = || DateError(text.to_owned());
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shaped {
            return Err(error());
        }
        let year = text[0..4].parse().map_err(|_| error())?;
        let month = text[5..7].parse().map_err(|_| error())?;
        let day = text[8..10].parse().map_err(|_| error())?;
        Self::new(year, month, day).ok_or_else(error)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_and_print_back() {
        let date: Date = "2027-03-01".parse().unwrap();
        assert_eq!(date.to_string(), "2027-03-01");
        assert_eq!(
            "2024-02-29".parse::<Date>().unwrap(),
            Date::new(2024, 2, 29).unwrap()
        );
    }

    #[test]
    fn malformed_and_impossible_dates_are_rejected() {
        for text in [
            "2027-3-1",
            "2027/03/01",
            "01-03-2027",
            "2027-13-01",
            "2027-02-29",
            "2027-04-31",
            "2027-00-10",
            "2027-01-00",
            "",
            "2027-03-01T00:00:00",
            "２０２７-03-01",
        ] {
            assert!(text.parse::<Date>().is_err(), "{text}");
        }
    }

    #[test]
    fn dates_order_chronologically() {
        let a: Date = "2026-12-31".parse().unwrap();
        let b: Date = "2027-01-01".parse().unwrap();
        assert!(a < b);
    }

    #[test]
    fn days_since_epoch_become_civil_dates() {
        assert_eq!(Date::from_days_since_epoch(0).to_string(), "1970-01-01");
        assert_eq!(
            Date::from_days_since_epoch(11_016).to_string(),
            "2000-02-29"
        );
        assert_eq!(
            Date::from_days_since_epoch(19_783).to_string(),
            "2024-03-01"
        );
        assert!(Date::today() > "2025-01-01".parse().unwrap());
    }
}
