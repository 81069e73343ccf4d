//! Reading columns the same way from SQLite and PostgreSQL rows.
//!
//! Both drivers decode `i64`, `String`, `bool` and their `Option`s from the portable schema;
//! this trait gives the row mappers one spelling for both, and turns decode failures and
//! out-of-range values into [`StorageError::Corrupt`] instead of panics.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::types::from_micros;
use crate::StorageError;

pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String, StorageError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StorageError>;
    fn int(&self, col: &str) -> Result<i64, StorageError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StorageError>;
    fn flag(&self, col: &str) -> Result<bool, StorageError>;

    fn time(&self, col: &str) -> Result<DateTime<Utc>, StorageError> {
        let micros = self.int(col)?;
        from_micros(micros).ok_or_else(|| {
            StorageError::corrupt(format!(
                "timestamp {micros} in column {col} is out of range"
            ))
        })
    }

    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        match self.opt_int(col)? {
            None => Ok(None),
            Some(micros) => from_micros(micros).map(Some).ok_or_else(|| {
                StorageError::corrupt(format!(
                    "timestamp {micros} in column {col} is out of range"
                ))
            }),
        }
    }

    fn json(&self, col: &str) -> Result<serde_json::Value, StorageError> {
        let text = self.text(col)?;
        parse_json(col, &text)
    }

    fn opt_json(&self, col: &str) -> Result<Option<serde_json::Value>, StorageError> {
        match self.opt_text(col)? {
            None => Ok(None),
            Some(text) => parse_json(col, &text).map(Some),
        }
    }
}

fn parse_json(col: &str, text: &str) -> Result<serde_json::Value, StorageError> {
    serde_json::from_str(text)
        .map_err(|e| StorageError::corrupt(format!("column {col} does not hold valid JSON: {e}")))
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, col: &str) -> Result<String, StorageError> {
                Ok(self.try_get::<String, _>(col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StorageError> {
                Ok(self.try_get::<Option<String>, _>(col)?)
            }
            fn int(&self, col: &str) -> Result<i64, StorageError> {
                Ok(self.try_get::<i64, _>(col)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StorageError> {
                Ok(self.try_get::<Option<i64>, _>(col)?)
            }
            fn flag(&self, col: &str) -> Result<bool, StorageError> {
                Ok(self.try_get::<bool, _>(col)?)
            }
        }
    };
}

impl_row_ext!(sqlx::sqlite::SqliteRow);
impl_row_ext!(sqlx::postgres::PgRow);

/// A dynamically bound query argument, for queries whose WHERE clause is built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// Builds `WHERE a AND b ...` with `$n` placeholders numbered in bind order.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) clauses: Vec<String>,
    pub(crate) args: Vec<Arg>,
}

impl Conditions {
    /// Adds a bind value and returns its placeholder, e.g. `$3`.
    pub(crate) fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub(crate) fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    pub(crate) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Binds [`Arg`]s onto a `sqlx::query(...)` for either backend.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::row::Arg::Text(text) => query.bind(text),
                $crate::row::Arg::Int(int) => query.bind(int),
            };
        }
        query
    }};
}
pub(crate) use bind_args;

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_escape(text: &str) -> String {
    let mut res = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            res.push('\\');
        }
        res.push(c);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escape_escapes_wildcards() {
        assert_eq!(like_escape(r"50%_a\b"), r"50\%\_a\\b");
        assert_eq!(like_escape("Иванов"), "Иванов");
    }

    #[test]
    fn conditions_number_placeholders_in_order() {
        let mut c = Conditions::default();
        let a = c.arg(Arg::Int(1));
        let b = c.arg(Arg::Text("x".into()));
        c.push(format!("a = {a}"));
        c.push(format!("b = {b}"));
        assert_eq!(c.where_sql(), " WHERE a = $1 AND b = $2");
    }
}
