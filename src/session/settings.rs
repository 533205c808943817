//! Session settings: the names a session accepts with their defaults, SET, SHOW and
//! RESET, and the checks that refuse a bad value when it is set rather than when used.

use super::{QueryResult, Session};
use crate::error::{Error, Result};
use crate::sql::planner::OutputColumn;
use crate::types::{Value, TEXT};

/// Settings a session accepts, with their defaults. Unknown names are errors (42704),
/// so a typo is not silently ignored.
pub(super) const SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("idle_session_timeout", "0"),
    ("intervalstyle", "postgres"),
    ("max_staleness", "0"),
    ("read_consistency", "linearizable"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", "15.0 (Tessera 0.1.0)"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "repeatable read"),
];

/// Settings that SHOW reports but SET may not change.
pub(super) const READ_ONLY_SETTINGS: &[&str] =
    &["server_encoding", "server_version", "transaction_isolation"];

pub(super) fn validate_setting(name: &str, value: &str) -> Result<String> {
    match name {
        "read_consistency" => {
            let lowered = value.to_lowercase();
            if ["linearizable", "lease", "stale"].contains(&lowered.as_str()) {
                Ok(lowered)
            } else {
                Err(Error::InvalidParameterValue(format!(
                    "invalid value for parameter \"read_consistency\": \"{value}\" (expected linearizable, lease or stale)"
                )))
            }
        }
        "statement_timeout"
        | "idle_session_timeout"
        | "idle_in_transaction_session_timeout"
        | "max_staleness" => {
            parse_timeout(value)?;
            Ok(value.trim().to_string())
        }
        "extra_float_digits" => {
            value.trim().parse::<i64>().map_err(|_| {
                Error::InvalidParameterValue(format!(
                    "invalid value for parameter \"{name}\": \"{value}\""
                ))
            })?;
            Ok(value.trim().to_string())
        }
        _ => Ok(value.to_string()),
    }
}

/// Parses a timeout setting as PostgreSQL does: a number of milliseconds, or a number
/// with a unit (`ms`, `s`, `min`, `h`); 0 means no timeout.
pub(super) fn parse_timeout(value: &str) -> Result<Option<std::time::Duration>> {
    let text = value.trim().to_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        Error::InvalidParameterValue(format!(
            "invalid value for a timeout: \"{value}\" (e.g. 5000, 5s, 1min)"
        ))
    };
    let amount: u64 = number.parse().map_err(|_| invalid())?;
    let millis = match unit.trim() {
        "" | "ms" | "millisecond" | "milliseconds" => amount,
        "s" | "sec" | "second" | "seconds" => amount.saturating_mul(1000),
        "min" | "minute" | "minutes" => amount.saturating_mul(60_000),
        "h" | "hour" | "hours" => amount.saturating_mul(3_600_000),
        _ => return Err(invalid()),
    };
    Ok((millis > 0).then(|| std::time::Duration::from_millis(millis)))
}

impl Session {
    /// Replaces a setting's built-in default for this session (the server's config file
    /// sets `statement_timeout` and the idle timeouts this way); `RESET` returns to it.
    pub fn set_default(&mut self, name: &str, value: &str) -> Result<()> {
        let name = name.to_lowercase();
        if !SETTINGS.iter().any(|(n, _)| *n == name) || READ_ONLY_SETTINGS.contains(&name.as_str())
        {
            return Err(Error::UnknownSetting(name));
        }
        let value = validate_setting(&name, value)?;
        self.defaults.insert(name, value);
        Ok(())
    }

    /// A timeout setting (`statement_timeout`, `idle_session_timeout`,
    /// `idle_in_transaction_session_timeout`) as a duration; `None` when it is off.
    pub fn timeout(&self, name: &str) -> Option<std::time::Duration> {
        parse_timeout(&self.setting(name)).unwrap_or(None)
    }

    pub(super) fn setting(&self, name: &str) -> String {
        if let Some(value) = self.settings.get(name).or_else(|| self.defaults.get(name)) {
            return value.clone();
        }
        SETTINGS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }

    pub(super) fn set(&mut self, name: &str, value: Option<&str>) -> Result<QueryResult> {
        let name = name.to_lowercase();
        if !SETTINGS.iter().any(|(n, _)| *n == name) {
            return Err(Error::UnknownSetting(name));
        }
        if READ_ONLY_SETTINGS.contains(&name.as_str()) {
            return Err(Error::InvalidParameterValue(format!(
                "parameter \"{name}\" cannot be changed"
            )));
        }
        match value {
            None => {
                self.settings.remove(&name);
            }
            Some(value) => {
                let value = validate_setting(&name, value)?;
                self.settings.insert(name, value);
            }
        }
        Ok(QueryResult::command("SET"))
    }

    pub(super) fn show(&self, name: &str) -> Result<QueryResult> {
        let name = name.to_lowercase();
        if name == "cluster" {
            return self.show_cluster();
        }
        if name == "checksum" {
            return self.show_checksum();
        }
        if name == "groups" {
            return self.show_groups();
        }
        if !SETTINGS.iter().any(|(n, _)| *n == name) {
            return Err(Error::UnknownSetting(name));
        }
        let column = OutputColumn {
            name: name.clone(),
            data_type: TEXT,
        };
        let mut result =
            QueryResult::rows(vec![column], vec![vec![Value::Text(self.setting(&name))]]);
        result.tag = "SHOW".into();
        Ok(result)
    }
}
